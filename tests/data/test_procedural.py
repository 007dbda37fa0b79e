"""Procedural scenes: determinism, ranges, consistency of the ground truth with the rendered stack."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from focalstack.data.normalize import working_range_m
from focalstack.data.procedural import LAYOUTS, ProceduralConfig, procedural_scene, shape_coverage
from focalstack.data.synth import synthesize_stack

CFG = ProceduralConfig(size=(40, 48), num_slices=(3, 6))


def _scene(seed: int, cfg: ProceduralConfig = CFG):
    return procedural_scene(cfg, torch.Generator().manual_seed(seed), name=f"p{seed}")


def test_same_seed_same_scene_and_different_seeds_differ():
    a, b, c = _scene(3), _scene(3), _scene(4)
    for field in ("images", "focus_m", "depth_m", "aif"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert a.camera == b.camera and a.meta == b.meta
    assert not torch.equal(a.aif, c.aif) and a.camera != c.camera


def test_scenes_respect_the_config():
    seen_layouts, seen_psfs, directions = set(), set(), set()
    for seed in range(24):
        s = _scene(seed)
        S = s.num_slices
        assert CFG.num_slices[0] <= S <= CFG.num_slices[1]
        assert s.images.shape == (S, 3, 40, 48) and s.aif.shape == (3, 40, 48) and s.depth_m.shape == (40, 48)
        assert s.name == f"p{seed}"
        cam = s.camera
        assert CFG.focal_length_m[0] <= cam.focal_length_m <= CFG.focal_length_m[1]
        assert CFG.f_number[0] <= cam.f_number <= CFG.f_number[1]
        assert CFG.pixel_size_m[0] <= cam.pixel_size_m <= CFG.pixel_size_m[1]
        near, far = s.focus_m.min(), s.focus_m.max()
        assert CFG.near_focus_m[0] <= near <= CFG.near_focus_m[1]
        assert far <= CFG.far_focus_m[1] and far >= near * CFG.min_focus_ratio * (1 - 1e-9)
        # Ground-truth depth lies in the default working range the network normalises with.
        lo, hi = working_range_m(s.focus_m[None])[0].tolist()
        assert lo * (1 - 1e-5) <= float(s.depth_m.min()) and float(s.depth_m.max()) <= hi * (1 + 1e-5)
        assert CFG.max_sigma_px[0] - 1e-6 <= s.meta["max_sigma_px"] <= CFG.max_sigma_px[1] + 1e-6
        # 8-bit quantised slices.
        assert torch.allclose(s.images * 255, (s.images * 255).round(), atol=1e-3)
        seen_layouts.add(s.meta["layout"])
        seen_psfs.add(s.meta["synth"]["psf"])
        directions.add(bool(s.focus_m[1] > s.focus_m[0]))
    assert seen_layouts == set(LAYOUTS) and seen_psfs == {"gaussian", "disc"} and directions == {True, False}


def test_stack_is_consistent_with_its_ground_truth():
    """Re-rendering (AIF, depth, camera, focus) without noise reproduces the slices up to the noise."""
    cfg = dataclasses.replace(CFG, shot_noise=(0.0, 0.0), read_noise=(0.0, 0.0), quantize_bits=None)
    for seed in range(3):
        s = _scene(seed, cfg)
        again = synthesize_stack(s.aif, s.depth_m, s.camera, s.focus_m, psf=s.meta["synth"]["psf"])
        assert (again - s.images).abs().max() < 1e-5
        # and the slices are really defocused differently
        assert (s.images[0] - s.images[-1]).abs().mean() > 1e-3


def test_defaults_and_default_generator():
    assert ProceduralConfig().size == (128, 128) and ProceduralConfig().num_slices == (5, 5)
    cfg = ProceduralConfig(size=(16, 16))
    assert torch.equal(procedural_scene(cfg).images, procedural_scene(cfg).images)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"size": (4, 64)}, "size"),
        ({"num_slices": (1, 5)}, "num_slices"),
        ({"num_slices": (6, 5)}, "num_slices"),
        ({"f_number": (0.0, 2.0)}, "f_number"),
        ({"near_focus_m": (0.05, 1.0)}, "focal length"),
        ({"min_focus_ratio": 1.0}, "min_focus_ratio"),
        ({"far_focus_m": (1.0, 2.0)}, "min_focus_ratio"),
        ({"focus_jitter": 0.5}, "focus_jitter"),
        ({"disc_prob": 1.5}, "probability"),
        ({"layout_weights": (0.0, 0.0, 0.0)}, "layout_weights"),
        ({"max_objects": 0}, "max_objects"),
        ({"quantize_bits": 0}, "quantize_bits"),
        ({"shot_noise": (-1.0, 0.0)}, "shot_noise"),
    ],
)
def test_config_validation(changes, match):
    with pytest.raises(ValueError, match=match):
        ProceduralConfig(**changes)


def test_each_layout_alone():
    for i, _ in enumerate(LAYOUTS):
        weights = tuple(1.0 if j == i else 0.0 for j in range(len(LAYOUTS)))
        s = _scene(i, dataclasses.replace(CFG, layout_weights=weights))
        assert s.meta["layout"] == LAYOUTS[i]


def test_shape_coverage_areas_and_errors():
    rect = shape_coverage((64, 80), "rectangle", (32.0, 40.0), 20.0, aspect=0.5, angle=0.3)
    ellipse = shape_coverage((64, 80), "ellipse", (32.0, 40.0), 20.0, aspect=0.5)
    assert float(rect.sum()) == pytest.approx(4 * 20 * 10, rel=0.02)
    assert float(ellipse.sum()) == pytest.approx(math.pi * 20 * 10, rel=0.03)
    assert rect.min() >= 0 and rect.max() <= 1 and float(ellipse[32, 40]) == 1.0
    blob = shape_coverage((64, 80), "blob", (32.0, 40.0), 15.0, harmonics=[(0.2, 0.0), (0.1, 1.0)])
    assert float(blob[32, 40]) == 1.0 and float(blob[0, 0]) == 0.0
    with pytest.raises(ValueError, match="kind"):
        shape_coverage((8, 8), "star", (4.0, 4.0), 2.0)
    with pytest.raises(ValueError, match="aspect"):
        shape_coverage((8, 8), "ellipse", (4.0, 4.0), 2.0, aspect=0.0)
