from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_train_procedural_benchmark_short_run(tmp_path: Path) -> None:
    from benchmarks.train_procedural import METRICS, main

    out, md = tmp_path / "b.json", tmp_path / "b.md"
    args = ["--minutes", "0.2", "--scenes", "2", "--speed-steps", "1", "--pool", "4",
            "--run", str(tmp_path / "run"), "--out", str(out), "--md", str(md)]
    main(args)
    payload = json.loads(out.read_text())
    assert set(payload["results"]) == {
        "daifnet w16 trained", "daifnet w16 untrained", "constant (mid range)", "DFF (classical)"
    }
    for row in payload["results"].values():
        assert set(row) == set(METRICS)
        assert 0.0 <= row["delta1"] <= 1.0 and row["absrel"] >= 0.0 and row["error_slices"] >= 0.0
    assert payload["training"]["steps"] >= 1
    assert 0.0 < payload["speed"]["render_share"] < 1.0
    assert "| DFF (classical) |" in md.read_text()
