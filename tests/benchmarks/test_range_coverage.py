"""The range-coverage analysis: the share of true depth outside the working range, its error floor, and
whether the sweep is pinned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks.range_coverage import COLUMNS, coverage, main
from tests.inference.test_fit import CAMERA, rendered_stack, synthetic_stack


def near_stack():
    """Three quarters of the scene at 1.35 D, nearer than the one-spacing range (1.2 D) of ``FOCUS``."""
    diopters = torch.full((32, 32), 1.35)
    diopters[:, 24:] = 0.5
    return rendered_stack(synthetic_stack(32).aif, 1.0 / diopters, 1.0, CAMERA, "disc")


def test_coverage_of_a_scene_partly_nearer_than_the_range() -> None:
    row = coverage(near_stack())
    assert row["out_m1"] == pytest.approx(0.75) and row["out_m2"] == 0.0  # 1.4 D holds it
    # clamped to 1.2 D, three quarters are 0.15 D (0.75 spacings of 0.2 D) off
    assert row["floor_m1"] == pytest.approx(0.75 * 0.75, rel=1e-3) and row["floor_m2"] == pytest.approx(0.0)


@pytest.mark.usefixtures("small_noise_reference")
def test_main_lists_the_scenes_outside_the_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import focalstack.inference.fit as fit_module

    near, inside = near_stack(), synthetic_stack(24, psf="disc")
    truths = {(32, 32): near.depth_m, (24, 24): inside.depth_m}

    def ideal_sweep(full, aif, cfg, costs=None):
        """The true depth clamped to the sweep's range (a real sweep finds it only in some scenes)."""
        lo, hi = full["depth_range_m"][0].tolist()
        return truths[tuple(aif.shape[-2:])].clamp(lo, hi)

    monkeypatch.setattr(fit_module, "_sweep_depth", ideal_sweep)
    near.save(tmp_path / "set" / "near")
    inside.save(tmp_path / "set" / "inside")
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    rows = main(["--data", str(tmp_path), "--sets", "set", "--sweep", "--out", str(out), "--md", str(md)])[
        "rows"
    ]
    by_name = {r["scene"]: r for r in rows}
    assert set(by_name) == {"near", "inside"} and all(set(r) == set(COLUMNS) for r in rows)
    assert by_name["near"]["pinned"] == pytest.approx(0.75) and by_name["near"][
        "fit_margin"
    ] == pytest.approx(2.0)
    assert by_name["inside"]["out_m1"] == 0.0 and by_name["inside"]["fit_margin"] == 1.0
    table = md.read_text()
    assert "| set | near |" in table and "| set | inside |" not in table and "mean of 2" in table
    assert json.loads(out.read_text())["rows"] == rows
