"""Fixtures for inference tests: a tiny untrained checkpoint and a small synthetic stack."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from focalstack.data.stack import FocalStack
from focalstack.models import ModelConfig, build_model
from focalstack.optics import ThinLens
from focalstack.train.checkpoint import save_checkpoint
from focalstack.train.config import TrainConfig


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights-only checkpoint of a small random DAIF-Net (width 4, depth 2)."""
    torch.manual_seed(0)
    cfg = TrainConfig(model=ModelConfig(width=4, depth=2))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    return save_checkpoint(path, model=build_model(cfg.model), config=cfg)


def make_stack(
    h: int = 40, w: int = 52, s: int = 4, *, focus: bool = True, camera: bool = True
) -> FocalStack:
    gen = torch.Generator().manual_seed(1)
    return FocalStack(
        images=torch.rand(s, 3, h, w, generator=gen),
        focus_m=torch.linspace(0.5, 2.0, s, dtype=torch.float64) if focus else None,
        camera=ThinLens(0.025, 2.0, 1e-5) if camera else None,
        name="synthetic",
    )
