"""Small builders shared by tests."""

from __future__ import annotations

import torch

from focalstack.data.stack import FocalStack
from focalstack.optics import ThinLens


def make_stack(
    h: int = 40, w: int = 52, s: int = 4, *, focus: bool = True, camera: bool = True
) -> FocalStack:
    """A random (S, 3, H, W) stack focused from 0.5 to 2 m, optionally with a complete camera."""
    gen = torch.Generator().manual_seed(1)
    return FocalStack(
        images=torch.rand(s, 3, h, w, generator=gen),
        focus_m=torch.linspace(0.5, 2.0, s, dtype=torch.float64) if focus else None,
        camera=ThinLens(0.025, 2.0, 1e-5) if camera else None,
        name="synthetic",
    )
