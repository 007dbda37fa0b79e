"""sRGB <-> linear-light conversion (IEC 61966-2-1), the one place this transfer function lives.

focalstack's convention: images in a ``FocalStack`` and network inputs/outputs are sRGB-encoded values in
[0, 1] (what files store, as in the paper). Synthesis, and the losses with ``LossConfig.linear_light``,
blur in linear light (what real optics do) by converting with these functions around the renderer.
"""

from __future__ import annotations

import torch


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values in [0, 1] -> linear light in [0, 1]. Any shape."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Linear light in [0, 1] -> sRGB-encoded values in [0, 1]. Any shape."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)
