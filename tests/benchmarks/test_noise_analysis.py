"""The noise analysis: its texture split, and a tiny run on two copies of one synthetic scene."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks.noise_analysis import COLUMNS, flat_quarter, main
from tests.inference.test_fit import synthetic_stack


def test_flat_quarter_is_a_quarter_of_the_pixels_in_the_flat_half() -> None:
    g = torch.Generator().manual_seed(0)
    aif = torch.full((3, 40, 40), 0.5)
    aif[:, :, 20:] = torch.rand(3, 40, 20, generator=g)
    mask = flat_quarter(aif)
    assert mask.shape == (40, 40) and abs(int(mask.sum()) - 400) <= 40
    assert not bool(mask[:, 20:].any())


@pytest.mark.usefixtures("small_noise_reference")
def test_scores_start_and_fit_on_both_sets(tmp_path: Path) -> None:
    for folder in ("A_train", "A0_train"):
        synthetic_stack(size=24, psf="disc").save(tmp_path / folder / "s0")
    out, md = tmp_path / "n.json", tmp_path / "n.md"
    files = ["--out", str(out), "--md", str(md)]
    rows = main(["--scenes", "s0", "--data", str(tmp_path), "--iterations", "2", *files])["rows"]
    assert [(r["scene"], r["set"]) for r in rows] == [("s0", "A"), ("s0", "A0")]
    for r in rows:
        assert set(r) == set(COLUMNS) and 0.0 <= r["flat_share"] <= 1.0
        assert r["start_slices"] >= 0.0 and r["fit_slices"] >= 0.0
    assert json.loads(out.read_text())["rows"] == rows and "| s0 | A0 |" in md.read_text()
    with pytest.raises(SystemExit):
        main(["--scenes", "nope", "--data", str(tmp_path), *files])
