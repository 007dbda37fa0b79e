"""The bundled demo scene: complete, loadable, and reproducible by scripts/make_demo_scene.py."""

from __future__ import annotations

import importlib.util
import json
from importlib import resources
from pathlib import Path

import torch

from focalstack.data.stack import FocalStack

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_demo_scene.py"
FOLDER = Path(str(resources.files("focalstack") / "assets" / "demo_scene"))


def _script():
    spec = importlib.util.spec_from_file_location("make_demo_scene", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_scene_is_complete():
    stack = FocalStack.load(FOLDER)
    assert stack.num_slices == 5 and stack.size == (192, 256)
    assert stack.camera is not None and stack.focus_m is not None  # complete camera, known focus
    assert stack.depth_m is not None and stack.aif is not None
    assert (stack.depth_m > 0).all() and (stack.focus_m.diff() > 0).all()
    scene = json.loads((FOLDER / "scene.json").read_text())
    assert "make_demo_scene.py" in scene["source"] and "MIT" in scene["licence"]
    assert sum(p.stat().st_size for p in FOLDER.iterdir()) < 1_000_000


def test_demo_scene_is_reproduced_by_its_script():
    script = _script()
    stored = FocalStack.load(FOLDER)
    assert stored.meta["seed"] == script.SEED
    assert stored.camera == script.CAMERA and stored.focus_m.tolist() == list(script.FOCUS_M)
    depth, aif = script.scene_geometry(torch.Generator().manual_seed(script.SEED))
    # Not bit-exact: other torch builds / CPUs round the float32 maths differently (seen on torch 2.11).
    torch.testing.assert_close(depth, stored.depth_m, rtol=1e-5, atol=1e-6)
    assert (aif - stored.aif).abs().max() <= 0.5 / 255 + 1e-6  # stored as 8-bit PNG
