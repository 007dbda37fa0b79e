from __future__ import annotations

import json

from focalstack.cli import main


def test_demo_runs_end_to_end_with_shipped_weights(tmp_path, capsys):
    out = tmp_path / "demo"
    main(["demo", "--out", str(out)])
    rows = json.loads((out / "metrics.json").read_text())
    assert set(rows) == {"network", "dff"}
    for method in rows:
        for name in ("depth.npy", "depth.png", "depth_color.png", "aif.png", "recon.png"):
            assert (out / method / name).is_file()
    # Regression guard for the shipped weights on the bundled scene (measured: 0.32 slices, 34.3 dB).
    assert rows["network"]["error_slices"] < 0.45
    assert rows["network"]["aif_psnr"] > 31.0
    assert "| network |" in capsys.readouterr().out
