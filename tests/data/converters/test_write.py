"""Shared converter helper: writing scene folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from focalstack.data.converters import write_scenes
from focalstack.data.stack import FocalStack
from focalstack.optics.camera import ThinLens

CAMERA = ThinLens(focal_length_m=0.05, f_number=2.0, pixel_size_m=2e-5)


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
