from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from focalstack.cli.eval import EvalCommand
from focalstack.data.imageio import write_image
from focalstack.eval.evaluate import evaluate_predictions, match_scenes, metrics_markdown

FOCUS = [0.5, 1.0, 2.0]


def _gt(folder: Path, depth: np.ndarray, aif: torch.Tensor) -> Path:
    folder.mkdir(parents=True)
    np.save(folder / "depth.npy", depth.astype(np.float32))
    write_image(folder / "aif.png", aif)
    (folder / "scene.json").write_text(json.dumps({"focus_distances_m": FOCUS}))
    return folder


def _pred(folder: Path, depth: np.ndarray | None, aif: torch.Tensor | None, units: str = "m") -> Path:
    folder.mkdir(parents=True)
    if depth is not None:
        np.save(folder / "depth.npy", depth.astype(np.float32))
    if aif is not None:
        write_image(folder / "aif.png", aif)
    (folder / "prediction.json").write_text(json.dumps({"depth_units": units}))
    return folder


@pytest.fixture
def data() -> tuple[np.ndarray, torch.Tensor]:
    rng = np.random.default_rng(0)
    depth = 0.5 + 1.5 * rng.random((16, 24))
    depth[0, :4] = 0.0  # invalid
    return depth, torch.rand(3, 16, 24)


def test_perfect_and_scaled_predictions(tmp_path: Path, data) -> None:
    depth, aif = data
    _gt(tmp_path / "gt" / "s1", depth, aif)
    _gt(tmp_path / "gt" / "s2", depth, aif)
    _pred(tmp_path / "pred" / "s1", depth, aif)
    _pred(tmp_path / "pred" / "s2", np.where(depth > 0, 2.0 * depth, 7.0), aif)
    report = evaluate_predictions(tmp_path / "pred", tmp_path / "gt")
    s1, s2 = report["scenes"]["s1"]["metrics"], report["scenes"]["s2"]["metrics"]
    assert s1["absrel"] == pytest.approx(0.0, abs=1e-6) and s1["delta1"] == 1.0
    assert s1["aif_psnr"] > 40 and s1["aif_ssim"] > 0.99  # 8-bit PNG round trip
    assert s2["absrel"] == pytest.approx(1.0, rel=1e-5) and s2["si_absrel"] == pytest.approx(0.0, abs=1e-6)
    assert s1["error_slices"] == pytest.approx(0.0, abs=1e-5) and "error_slices" in s2
    assert report["mean"]["absrel"] == pytest.approx(0.5, rel=1e-5)
    md = metrics_markdown(report)
    assert "| s1 |" in md and "| **mean** |" in md and "absrel" in md


def test_single_scene_units_and_resize_notes(tmp_path: Path, data) -> None:
    depth, aif = data
    gt = _gt(tmp_path / "gt", depth, aif)
    small = aif[:, ::2, ::2].contiguous()
    report = evaluate_predictions(_pred(tmp_path / "p", depth, small, units="slices"), gt)
    scene = report["scenes"]["gt"]
    assert "absrel" not in scene["metrics"] and "aif_psnr" in scene["metrics"]
    assert any("slices" in n for n in scene["notes"]) and any("resized" in n for n in scene["notes"])


def test_aif_without_gt_gives_no_reference_scores(tmp_path: Path, data) -> None:
    depth, aif = data
    gt = tmp_path / "gt"
    gt.mkdir()
    np.save(gt / "depth.npy", depth.astype(np.float32))
    metrics = evaluate_predictions(_pred(tmp_path / "p", None, aif), gt)["scenes"]["gt"]["metrics"]
    assert set(metrics) == {"aif_mg", "aif_sf"}


def test_bad_input(tmp_path: Path, data) -> None:
    depth, aif = data
    gt = _gt(tmp_path / "gt", depth, aif)
    with pytest.raises(ValueError, match="not a folder"):
        match_scenes(tmp_path / "missing", gt)
    nested = _pred(tmp_path / "preds" / "gt", depth, aif)
    assert match_scenes(tmp_path / "preds", gt) == [("gt", nested, gt)]
    _pred(tmp_path / "other" / "x", depth, aif)
    with pytest.raises(ValueError, match="no scene"):
        match_scenes(tmp_path / "other", tmp_path)
    with pytest.raises(ValueError, match="other aspect"):
        evaluate_predictions(_pred(tmp_path / "p", depth[:, :10], None), gt)


def test_cli_writes_json_and_markdown(tmp_path: Path, data) -> None:
    depth, aif = data
    gt = _gt(tmp_path / "gt", depth, aif)
    pred = _pred(tmp_path / "pred", depth, aif)
    EvalCommand(pred=pred, gt=gt, out=tmp_path / "out").run()
    report = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert report["mean"]["delta1"] == 1.0
    assert (tmp_path / "out" / "eval.md").read_text().startswith("# Evaluation")
    with pytest.raises(SystemExit):
        EvalCommand(pred=pred, out=tmp_path / "out").run()
    with pytest.raises(SystemExit):
        EvalCommand(out=tmp_path / "out").run()
    with pytest.raises(SystemExit, match="not both"):
        EvalCommand(pred=pred, gt=gt, holdout_slice=gt, out=tmp_path / "out").run()
    with pytest.raises(SystemExit, match="not a folder"):
        EvalCommand(pred=tmp_path / "nope", gt=gt, out=tmp_path / "out").run()
