"""Slice-attention DAIF-Net: contract, order invariance, the focus-measure start, the no-focus variant."""

from __future__ import annotations

import pytest
import torch

from focalstack.models import DAIFNetAttention, ModelConfig, build_model
from focalstack.utils.focus import focus_measure


def _inputs(b: int = 2, s: int = 4, h: int = 24, w: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(b, s, 3, h, w, generator=gen), torch.rand(b, s, generator=gen).sort(dim=1).values


def test_contract_and_order_invariance() -> None:
    for name in ("daifnet-attn", "daifnet-attn-nofocus", "daifnet-attn-metres"):
        net = build_model(ModelConfig(name=name, width=4, depth=2)).eval()
        stack, u = _inputs()
        metres = 1.0 / (0.2 + u)
        out = net(stack, u, focus_m=metres)
        assert out["aif"].shape == (2, 3, 24, 20) and out["t"].shape == (2, 1, 24, 20)
        assert out["t"].min() >= 0 and out["t"].max() <= 1
        perm = torch.tensor([2, 0, 3, 1])
        again = net(stack[:, perm], u[:, perm], focus_m=metres[:, perm])
        torch.testing.assert_close(again["t"], out["t"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(again["aif"], out["aif"], atol=1e-5, rtol=1e-5)


def test_untrained_selects_the_sharpest_slice() -> None:
    """At initialisation the weights follow the focus measure: depth lands on the sharpest slice's u."""
    net = build_model(ModelConfig(name="daifnet-attn", width=4, depth=2)).eval()
    stack, u = _inputs(b=1, s=3, h=32, w=32)
    sharp = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    blurred = torch.nn.functional.avg_pool2d(sharp, 5, stride=1, padding=2)
    stack = torch.stack([blurred[0], sharp[0], blurred[0]])[None]  # slice 1 is the sharp one
    fm = focus_measure(stack[0], window=9)
    assert (fm.argmax(0) == 1).float().mean() > 0.9
    t = net(stack, u)["t"][0, 0, 8:-8, 8:-8]
    assert (t - u[0, 1]).abs().median() < 0.02
    # contrast invariance: a 20x flatter (e.g. noise-free, low-contrast) stack selects the same slice
    faint = net(0.5 + 0.05 * (stack - 0.5), u)["t"][0, 0, 8:-8, 8:-8]
    assert (faint - u[0, 1]).abs().median() < 0.02


def test_metres_variant_reads_the_raw_focus_distances() -> None:
    """The focus-normalisation ablation feeds metres to the encoder; it needs them and they matter."""
    stack, u = _inputs()
    net = build_model(ModelConfig(name="daifnet-attn-metres", width=4, depth=2)).eval()
    with torch.no_grad():  # make the learned corrections visible
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    near, far = 1.0 + u, 5.0 + 4.0 * u
    assert not torch.allclose(net(stack, u, focus_m=near)["aif"], net(stack, u, focus_m=far)["aif"])
    with pytest.raises(ValueError, match="focus_m"):
        net(stack, u)
    with pytest.raises(ValueError, match="focus_input"):
        DAIFNetAttention(4, 2, focus_input="diopters")


def test_nofocus_variant_scores_by_appearance_only() -> None:
    """Without the focus plane the selection weights (hence the AIF) cannot depend on u."""
    stack, u = _inputs()
    shifted = 0.2 + 0.5 * u
    blind = build_model(ModelConfig(name="daifnet-attn-nofocus", width=4, depth=2)).eval()
    torch.testing.assert_close(blind(stack, u)["aif"], blind(stack, shifted)["aif"])
    seeing = build_model(ModelConfig(name="daifnet-attn", width=4, depth=2)).eval()
    with torch.no_grad():  # make the learned corrections visible
        for p in seeing.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert not torch.allclose(seeing(stack, u)["aif"], seeing(stack, shifted)["aif"])
