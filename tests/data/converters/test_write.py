"""Shared converter helpers: rendering RGB-D samples into stacks, writing scene folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from focalstack.data.converters import synthesize_rgbd, write_scenes
from focalstack.data.rgbd import RGBDSample
from focalstack.data.stack import FocalStack
from focalstack.data.synth import NoiseConfig
from focalstack.optics.camera import ThinLens

CAMERA = ThinLens(focal_length_m=0.05, f_number=2.0, pixel_size_m=2e-5)


def _sample(name: str = "s") -> RGBDSample:
    rgb = torch.rand(3, 12, 16, generator=torch.Generator().manual_seed(0))
    depth = torch.full((12, 16), 1.0)
    depth[:, 8:] = 3.0
    depth[0:3, 0:3] = 0.0  # a hole
    return RGBDSample(name, rgb, depth, CAMERA, [1.0, 3.0], {"dataset": "test"})


def test_synthesize_rgbd_keeps_ground_truth_holes() -> None:
    (stack,) = synthesize_rgbd([_sample()], model="gather", psf="gaussian")
    assert stack.images.shape == (2, 3, 12, 16) and stack.name == "s"
    assert torch.equal(stack.aif, _sample().rgb) and stack.depth_m[0:3, 0:3].eq(0).all()
    assert stack.meta["dataset"] == "test" and stack.meta["synthesis"]["model"] == "gather"
    # focused at 1 m, the 1 m half stays sharp and the 3 m half is blurred; vice versa at 3 m
    near, far = (slice(3, -3), slice(2, 6)), (slice(3, -3), slice(11, 14))
    err = [(stack.images[i] - stack.aif).abs() for i in range(2)]
    assert err[0][(slice(None), *near)].mean() < err[1][(slice(None), *near)].mean()
    assert err[1][(slice(None), *far)].mean() < err[0][(slice(None), *far)].mean()


def test_synthesize_rgbd_noise_is_seeded_per_sample() -> None:
    noise = NoiseConfig(read=0.01)
    a = list(synthesize_rgbd([_sample("a"), _sample("b")], model="gather", noise=noise, seed=3))
    b = list(synthesize_rgbd([_sample("a")], model="gather", noise=noise, seed=3))
    assert torch.equal(a[0].images, b[0].images) and not torch.equal(a[0].images, a[1].images)
    with pytest.raises(ValueError, match="needs a camera"):
        list(synthesize_rgbd([RGBDSample("x", torch.zeros(3, 4, 4), torch.ones(4, 4))]))


def test_write_scenes(tmp_path: Path) -> None:
    stacks = [FocalStack(torch.rand(2, 3, 4, 4), [1.0, 2.0], CAMERA, name=n) for n in ("one", "two")]
    written = write_scenes(stacks, tmp_path)
    assert written == [tmp_path / "one", tmp_path / "two"]
    assert FocalStack.load(tmp_path / "two").focus_m.tolist() == [1.0, 2.0]
    with pytest.raises(FileExistsError):
        write_scenes(stacks[:1], tmp_path)
    assert write_scenes(stacks[:1], tmp_path, overwrite=True) == [tmp_path / "one"]
    with pytest.raises(ValueError, match="two scenes are named"):
        write_scenes([stacks[0], stacks[0]], tmp_path / "dup")
