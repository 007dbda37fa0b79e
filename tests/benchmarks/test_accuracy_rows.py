"""The accuracy table's fit rows: each ablation undoes one default, in the order they were adopted."""

from __future__ import annotations

from benchmarks.accuracy import FIT_ROWS, ORACLE
from benchmarks.fit_procedural import fit_config
from focalstack.inference.fit import FitConfig


def test_fit_rows_each_undo_one_more_default() -> None:
    default = FitConfig(iterations=2)
    assert fit_config(2, FIT_ROWS["default"][1]) == default
    single = fit_config(2, FIT_ROWS["single-noise"][1])
    assert single.loss.sweep_noise_levels == 1 < default.loss.sweep_noise_levels and single.psf == "auto"
    gaussian = fit_config(2, FIT_ROWS["gaussian"][1])
    assert (gaussian.psf, gaussian.loss.sweep_noise_levels) == ("gaussian", 1)
    assert gaussian.loss.sweep_penalties == default.loss.sweep_penalties
    window = fit_config(2, FIT_ROWS["window"][1])
    assert (window.psf, window.loss.sweep_penalties) == ("gaussian", None)
    assert FIT_ROWS["oracle"] == (ORACLE, ORACLE)
    assert FIT_ROWS["default"][0].format(it=30) == "fit (30 it/scale)"
