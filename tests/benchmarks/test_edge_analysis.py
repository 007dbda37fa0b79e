"""The edge analysis: its regions, its error split, and a tiny run on two synthetic scenes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from benchmarks.edge_analysis import COLUMNS, REGIONS, edge_band, main, regions, split_error
from tests.inference.test_fit import synthetic_stack

STARTS = (
    "the sweep",
    "the true depth",
    "the true depth in the edge band, the sweep's elsewhere",
    "the sweep's depth in the edge band, the truth elsewhere",
)


def test_edge_band_is_the_given_width_around_a_step() -> None:
    inv = torch.zeros(20, 30)
    inv[:, 15:] = 2.0  # a 2-slice step between columns 14 and 15: both are edge pixels
    band = edge_band(inv, 3)
    assert band[:, 11:19].all() and not band[:, :11].any() and not band[:, 19:].any()
    assert not edge_band(inv * 0.2, 3).any()  # a 0.4-slice step is no edge
    assert edge_band(inv, 0).sum() == 2 * 20


def test_regions_are_disjoint_and_the_shares_add_up() -> None:
    stack = synthetic_stack(size=32, psf="disc")
    masks = regions(stack, 2)
    assert set(masks) == set(REGIONS)
    total = sum(m.int() for m in masks.values())
    assert int(total.max()) == 1 and bool(masks["edge"].any())  # the disc in front has an edge
    depth = stack.depth_m * 1.1
    row = split_error(depth, stack, masks)
    assert math.isclose(sum(row[f"{r}_share"] for r in REGIONS), 1.0, rel_tol=1e-5)
    assert math.isclose(sum(row[f"{r}_frac"] for r in REGIONS), 1.0, rel_tol=1e-5)
    assert all(row[f"{r}_signed"] < 0 for r in REGIONS)  # too far everywhere
    assert split_error(stack.depth_m, stack, masks)["error_slices"] < 1e-6


@pytest.mark.usefixtures("small_noise_reference")
def test_scores_start_and_fit_on_both_sets(tmp_path: Path) -> None:
    for name in ("b", "bsim"):
        synthetic_stack(size=24, psf="disc").save(tmp_path / name)
    out, md = tmp_path / "e.json", tmp_path / "e.md"
    files = ["--out", str(out), "--md", str(md), "--iterations", "2", "--band-px", "2"]
    rows = main(["--b", str(tmp_path / "b"), "--bsim", str(tmp_path / "bsim"), *files])["rows"]
    assert [r["set"] for r in rows] == ["B", "B", "Bsim", "Bsim"]
    assert [r["estimate"] for r in rows[:2]] == ["start", "fit (2 it/scale)"]
    for r in rows:
        assert set(r) == set(COLUMNS) and r["error_slices"] >= 0.0
    assert json.loads(out.read_text())["rows"] == rows and "| Bsim | start |" in md.read_text()
    with pytest.raises(SystemExit):
        main(["--b", str(tmp_path / "nope"), *files])
    with pytest.raises(SystemExit):
        main(["--b", str(tmp_path / "b"), "--band-px", "-1", *files[:4]])


@pytest.mark.usefixtures("small_noise_reference")
def test_starts_mix_the_sweep_and_the_truth_along_the_band(tmp_path: Path) -> None:
    synthetic_stack(size=24, psf="disc").save(tmp_path / "b")
    out, md = tmp_path / "s.json", tmp_path / "s.md"
    common = ["--b", str(tmp_path / "b"), "--sets", "B", "--starts", "--iterations", "1"]
    files = ["--out", str(out), "--md", str(md)]
    rows = main([*common, "--band-px", "2", *files])["rows"]
    labels = [r["estimate"] for r in rows]
    assert labels[0] == "start: the sweep" and len(rows) == 1 + 2 * 4 + 1
    assert labels[1:5] == [f"fit from {s}" for s in STARTS] and labels[5:9] == [
        f"layered fit from {s}" for s in STARTS
    ]
    assert labels[9] == "layered fit at full size only (scales (1,)) from the true depth"
    assert all(set(r) == set(COLUMNS) and math.isfinite(r["error_slices"]) for r in rows)
    # a band over every pixel: "true in the band" is the truth and "the sweep's in the band" the sweep
    wide = {r["estimate"]: r["error_slices"] for r in main([*common, "--band-px", "30", *files])["rows"]}
    for renderer in ("fit", "layered fit"):
        assert wide[f"{renderer} from {STARTS[2]}"] == wide[f"{renderer} from {STARTS[1]}"]
        assert wide[f"{renderer} from {STARTS[3]}"] == wide[f"{renderer} from {STARTS[0]}"]
    assert wide["fit from the true depth"] != wide["fit from the sweep"]


@pytest.mark.usefixtures("small_noise_reference")
def test_objective_scores_the_truth_and_both_starts_from_both_aifs(tmp_path: Path) -> None:
    from benchmarks.edge_analysis import OBJECTIVE_COLUMNS, OBJECTIVE_RENDERERS

    stack = synthetic_stack(size=24, psf="disc")
    stack.save(tmp_path / "b")
    files = ["--out", str(tmp_path / "o.json"), "--md", str(tmp_path / "o.md")]
    args = ["--b", str(tmp_path / "b"), "--sets", "B", "--objective", "--band-px", "2", *files]
    rows = main(args)["rows"]
    depths = ["the true depth", "the sweep's depth (halos kept)", "the default start (halos retracted)"]
    renderers = [label for label, _ in OBJECTIVE_RENDERERS]
    expected = [(f, d, a) for f in renderers for a in ("true", "the sweep's") for d in depths]
    assert [(r["renderer"], r["depth"], r["aif"]) for r in rows] == expected
    assert all(set(r) == set(OBJECTIVE_COLUMNS) and r["all"] >= 0.0 for r in rows)
    # the stack was rendered per pixel, not layered, but from its own depth and AIF it is close
    assert rows[0]["all"] < rows[1]["all"]
    assert rows[6]["all"] < rows[7]["all"]
    assert rows[0]["all"] != rows[6]["all"]  # the fill changes the render
