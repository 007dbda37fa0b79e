"""Smoke test of the renderer benchmark (``benchmarks/render.py --quick``)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_benchmark_writes_sane_json(tmp_path: Path) -> None:
    out, md = tmp_path / "render.json", tmp_path / "render.md"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.render",
        "--quick",
        "--out",
        str(out),
        "--md",
        str(md),
    ]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=300)
    result = json.loads(out.read_text())
    assert result["quick"] and result["machine"]["threads"] == 2
    assert result["floor"]["gflops"] > 0 and result["floor"]["copy_gb_s"] > 0
    rows = {r["method"]: r for r in result["results"]}
    assert set(rows) == {"gather", "scatter", "disc", "unfold-gather", "unfold-scatter"}
    for row in rows.values():
        for key in ("fwd_ms", "fwd_bwd_ms", "peak_mb", "max_err"):
            assert math.isfinite(row[key]), (row["method"], key)
        assert row["fwd_ms"] > 0 and row["fwd_bwd_ms"] > 0
        assert row["max_err"] < 1e-5  # float32 against the float64 tap loop
    for name in ("gather", "scatter", "disc"):
        assert rows[name]["speedup_fwd_bwd"] > 0
    assert rows["gather"]["floor_ms"] > 0 and rows["gather"]["x_floor"] > 0
    assert "| gather |" in md.read_text()


def test_breakdown_accounts_for_the_render_time() -> None:
    """The profiled ATen ops of gather fwd+bwd: named, counted, and summing to about the timed run."""
    from benchmarks.render import breakdown_text, measure_breakdown

    bd = measure_breakdown((1, 2, 32, 7), reps=2)
    ops = {r["op"]: r for r in bd["ops"]}
    assert {"aten::mul", "aten::addcmul_"} <= set(ops)
    assert bd["calls"] > 50 and bd["dispatch_us"] > 0
    assert all(r["calls"] > 0 and r["self_ms"] > 0 for r in bd["ops"])
    total = sum(r["self_ms"] for r in bd["ops"])
    assert 0.2 * bd["fwd_bwd_ms"] < total < 5 * bd["fwd_bwd_ms"]  # profiler overhead aside
    assert "| aten::" in breakdown_text(bd)
