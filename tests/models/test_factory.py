"""Model registry / factory, and a training step on every registered model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import focalstack.models as models
from focalstack.models import DAIFNet, ModelConfig, build_model, create_model, list_models, register_model


def test_daifnet_registered_and_default() -> None:
    assert "daifnet" in list_models()
    assert isinstance(create_model(), DAIFNet)
    net = build_model(ModelConfig(width=4, depth=2))
    assert isinstance(net, DAIFNet) and (net.width, net.depth) == (4, 2)


def test_unknown_model_raises() -> None:
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        create_model("nope")


def test_register_decorator(monkeypatch) -> None:
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))

    @register_model("tiny-test")
    class Tiny(nn.Module):
        def __init__(self, width: int = 1, depth: int = 1) -> None:
            super().__init__()
            self.width = width

    assert "tiny-test" in list_models()
    assert create_model("tiny-test", width=3).width == 3
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny-test")(Tiny)


@pytest.mark.parametrize("name", list_models())
def test_every_model_trains(name: str) -> None:
    """Forward + backward at a small size: finite outputs, every parameter gets a finite nonzero gradient."""
    net = build_model(ModelConfig(name=name, width=4, depth=2))
    stack, u = torch.rand(2, 3, 3, 20, 12), torch.rand(2, 3)
    out = net(stack, u, focus_m=1.0 + torch.rand(2, 3))
    assert out["aif"].shape == (2, 3, 20, 12) and out["t"].shape == (2, 1, 20, 12)
    assert all(torch.isfinite(v).all() for v in out.values())
    # A loss that depends on every output pixel of both heads.
    target = torch.rand(2, 4, 20, 12)
    loss = ((torch.cat([out["aif"], out["t"]], 1) - target) ** 2).mean()
    loss.backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
