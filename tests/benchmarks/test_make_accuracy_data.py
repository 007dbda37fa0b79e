"""scripts/make_accuracy_data.py's Bsim: test data B's truth re-rendered through focalstack's own model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from focalstack.data.stack import FocalStack
from focalstack.data.synth import synthesize_stack
from tests.inference.test_fit import synthetic_stack

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_accuracy_data.py"


def _script():
    spec = importlib.util.spec_from_file_location("make_accuracy_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bsim_keeps_the_scene_and_replaces_only_the_optics(tmp_path: Path) -> None:
    script = _script()
    source = synthetic_stack(size=32, psf="disc")
    source.meta["psf"] = "box"
    source.save(tmp_path / "B" / "scene")
    script.render_bsim(tmp_path / "B" / "scene", tmp_path / "out", overwrite=False)
    bsim = FocalStack.load(tmp_path / "out" / "Bsim" / "scene")
    b = FocalStack.load(tmp_path / "B" / "scene")
    assert torch.equal(bsim.focus_m, b.focus_m) and bsim.camera == b.camera
    assert torch.allclose(bsim.depth_m, b.depth_m) and torch.allclose(bsim.aif, b.aif, atol=1 / 255)
    assert bsim.meta["accuracy_set"] == "Bsim" and "disc" in bsim.meta["psf"]
    expected = synthesize_stack(b.aif, b.depth_m, b.camera, b.focus_m, **script.BSIM)
    assert torch.allclose(bsim.images, expected, atol=1 / 255 + 1e-6)
    with pytest.raises(FileExistsError):
        script.render_bsim(tmp_path / "B" / "scene", tmp_path / "out", overwrite=False)


def test_bsim_needs_the_truth(tmp_path: Path) -> None:
    stack = synthetic_stack(size=16)
    FocalStack(stack.images, stack.focus_m, stack.camera, name="no_truth").save(tmp_path / "s")
    with pytest.raises(SystemExit, match="AIF, a depth map"):
        _script().render_bsim(tmp_path / "s", tmp_path / "out", overwrite=False)
