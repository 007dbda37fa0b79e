"""The accuracy table's fit rows: each ablation undoes one default, in the order they were adopted."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from benchmarks.accuracy import DEFAULT_FIT_ROWS, FIT_ROWS, ORACLE, merged, set_fit_rows, settings_of
from benchmarks.accuracy import test_sets as load_test_sets  # not a test: pytest would collect it
from benchmarks.fit_procedural import fit_config
from focalstack.inference.fit import FitConfig
from tests.inference.test_fit import synthetic_stack


def test_fit_rows_each_undo_one_more_default() -> None:
    default = FitConfig(iterations=2)
    assert fit_config(2, FIT_ROWS["default"][1]) == default and default.aif_prior == "after"
    assert default.noise_aware_aif and default.near_slice_when_pinned and default.retract_halos
    kept = fit_config(2, FIT_ROWS["no-halo"][1])
    assert kept == dataclasses.replace(default, retract_halos=False)
    ungated = fit_config(2, FIT_ROWS["no-near-slice-pinned"][1])
    assert ungated == dataclasses.replace(kept, near_slice_when_pinned=False)
    unfiltered = fit_config(2, FIT_ROWS["no-residual-blur"][1])
    assert unfiltered.loss == dataclasses.replace(default.loss, sweep_residual_blur_px=0.0)
    assert unfiltered == dataclasses.replace(ungated, loss=unfiltered.loss)
    assert default.loss.sweep_residual_blur_px > 0
    fixed = fit_config(2, FIT_ROWS["fixed-range"][1])
    assert fixed == dataclasses.replace(unfiltered, widen_margin=0) and default.widen_margin > 0
    plain = fit_config(2, FIT_ROWS["plain-stacking"][1])
    assert plain == dataclasses.replace(fixed, noise_aware_aif=False)
    assert fit_config(2, FIT_ROWS["joint-aif"][1]) == dataclasses.replace(plain, aif_prior="joint")
    # not an ablation but a measured alternative: more steps at coarse scales
    assert default.step_growth == 0.0
    # the alternatives measured before the gated near-slice sweep was the default keep it off
    assert fit_config(2, FIT_ROWS["coarse-steps"][1]) == dataclasses.replace(ungated, step_growth=2.0)
    single = fit_config(2, FIT_ROWS["single-noise"][1])
    assert single.loss.sweep_noise_levels == 1 < default.loss.sweep_noise_levels and single.psf == "auto"
    assert single.aif_prior == "joint"
    gaussian = fit_config(2, FIT_ROWS["gaussian"][1])
    assert (gaussian.psf, gaussian.loss.sweep_noise_levels) == ("gaussian", 1)
    assert gaussian.loss.sweep_penalties == default.loss.sweep_penalties
    window = fit_config(2, FIT_ROWS["window"][1])
    assert (window.psf, window.loss.sweep_penalties) == ("gaussian", None)
    assert FIT_ROWS["oracle"] == (ORACLE, {})
    layered = fit_config(2, FIT_ROWS["layered"][1])
    assert layered == dataclasses.replace(
        ungated, loss=dataclasses.replace(default.loss, render_mode="layered")
    )
    assert FIT_ROWS["oracle-layered"][1] == FIT_ROWS["layered"][1]
    near = fit_config(2, FIT_ROWS["near-slice"][1])
    # measured before the halo retraction was the default: it keeps it off
    assert near == dataclasses.replace(
        kept, loss=dataclasses.replace(default.loss, sweep_relative_beyond_focus=True)
    )
    assert not default.loss.sweep_relative_beyond_focus
    assert fit_config(2, FIT_ROWS["refine-layered"][1]) == dataclasses.replace(default, refine="layered")
    by_name = {"layered", "oracle-layered", "near-slice", "refine-layered", "layered-fill"}
    assert not by_name & set(DEFAULT_FIT_ROWS)
    assert fit_config(2, FIT_ROWS["layered-fill"][1]).loss.layered_fill_hidden
    assert {"no-halo", "no-near-slice-pinned"} <= set(DEFAULT_FIT_ROWS)
    assert FIT_ROWS["default"][0].format(it=30) == "fit (30 it/scale)"


def test_merge_keeps_other_rows_and_refuses_other_settings(tmp_path: Path) -> None:
    """--merge keeps the rows it does not rerun; settings that change row labels must match."""
    args = {"data": "d", "limit": None, "quick": False, "fit_iterations": 30, "train_minutes": 4.0}
    args["tta_minutes"] = 2.0
    old = [{"data": "A", "method": m} for m in ("fit (30 it/scale)", "fine-tuned on A train (4 min)")]
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"args": settings_of(argparse.Namespace(**args)), "rows": old}))
    new = [{"data": "A", "method": "fit (30 it/scale)", "new": True}]
    methods = ["fit (30 it/scale)", "fine-tuned on A train (4 min)"]
    rows = merged(str(path), new, methods, settings_of(argparse.Namespace(**args)))
    assert sorted(r["method"] for r in rows) == sorted(methods) and new[0] in rows
    # with other fine-tuning minutes the kept rows' labels would not match, and they would be lost
    other = settings_of(argparse.Namespace(**{**args, "train_minutes": 10.0}))
    with pytest.raises(SystemExit, match="train_minutes"):
        merged(str(path), new, methods, other)


def test_ablation_sets_load_from_their_folders_and_get_few_fit_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A0 (A without sensor noise) is read from A0_test, Bsim (B through focalstack's own model) from Bsim;
    both are scored with the default fit, its latest ablation and the fit from the truth only (Bsim also
    with the hidden-surface fill, when asked for by name); the other
    sets get every fit row."""
    monkeypatch.setattr("benchmarks.accuracy.ANTINOUS", tmp_path / "no_shared")
    for folder in ("A_test", "Aprime_test", "A0_test", "Bsim"):
        synthetic_stack(size=32).save(tmp_path / folder / "s0")
    sets = load_test_sets(tmp_path, None)
    assert list(sets) == ["A", "A'", "A0", "Bsim"] and [s.name for s in sets["A0"]] == ["s0"]
    assert list(load_test_sets(tmp_path, None, ("A",))) == ["A"]
    assert set_fit_rows("A0", list(FIT_ROWS)) == ["default", "no-halo", "oracle"]
    assert set_fit_rows("Bsim", list(FIT_ROWS)) == ["default", "layered-fill", "no-halo", "oracle"]
    assert set_fit_rows("Bsim", DEFAULT_FIT_ROWS) == ["default", "no-halo", "oracle"]  # the fill: by name
    assert set_fit_rows("A", list(FIT_ROWS)) == list(FIT_ROWS)


def test_committed_json_is_the_committed_table(tmp_path: Path) -> None:
    """docs/results/accuracy.json is --merge's base on a fresh clone: it must hold the README's table, every
    method label of the current rows, and the settings of the README's command."""
    from benchmarks.accuracy import report

    results = Path(__file__).resolve().parents[2] / "docs" / "results"
    payload = json.loads((results / "accuracy.json").read_text())
    out = argparse.Namespace(
        **{**payload["args"], "out": str(tmp_path / "a.json"), "md": str(tmp_path / "a.md")}
    )
    report(payload["rows"], out)
    assert (tmp_path / "a.md").read_text() == (results / "accuracy.md").read_text()
    labels = {label.format(it=30) for label, _ in FIT_ROWS.values()}
    fit_rows = {r["method"] for r in payload["rows"] if r["method"].startswith(("fit", "diagnostic"))}
    assert fit_rows <= labels
    assert (payload["args"]["fit_iterations"], payload["args"]["train_minutes"]) == ("30", "4.0")
