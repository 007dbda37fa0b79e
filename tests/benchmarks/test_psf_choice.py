from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.psf_choice import main, rendered_with
from tests.inference.test_fit import synthetic_stack


@pytest.fixture(autouse=True)
def _no_shared_scene(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the run tiny: set B (a 256 px scene in ../shared) is left out."""
    monkeypatch.setattr("benchmarks.accuracy.ANTINOUS", tmp_path / "no_shared")


def test_psf_choice_scores_the_choice_against_the_synthesis_psf(tmp_path: Path) -> None:
    data = tmp_path / "accuracy"
    for folder, psf in (("A_test", "disc"), ("Aprime_test", "gaussian")):
        stack = synthetic_stack(size=48, psf=psf)
        stack.meta["synth"] = {"psf": psf}
        stack.save(data / folder / "s0")
    out, md = tmp_path / "p.json", tmp_path / "p.md"
    payload = main(
        [
            "--seeds",
            "5",
            "--scenes",
            "1",
            "--data",
            str(data),
            "--threads",
            "1",
            "--out",
            str(out),
            "--md",
            str(md),
        ]
    )
    rows = {r["set"]: r for r in payload["rows"]}
    assert list(rows) == ["procedural, seed 5", "A", "A'"]
    for name, psf in (("A", "disc"), ("A'", "gaussian")):
        assert rows[name]["per_scene"][0] == {"scene": "s0", "rendered_with": psf, "chosen": psf}
        assert rows[name]["correct"] == "1 / 1"
    assert rows["procedural, seed 5"]["chose disc"] + rows["procedural, seed 5"]["chose gaussian"] == 1
    assert json.loads(out.read_text())["rows"] == payload["rows"]
    assert "| A' | 1 | gaussian | 0 | 1 | 1 / 1 |" in md.read_text()


def test_rendered_with_reads_either_metadata_place() -> None:
    stack = synthetic_stack(size=16)
    assert rendered_with(stack) is None
    stack.meta["psf"] = "disc"
    assert rendered_with(stack) == "disc"
    stack.meta = {"synth": {"psf": "gaussian"}}
    assert rendered_with(stack) == "gaussian"
