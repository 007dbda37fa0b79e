"""Building blocks shared by the focal-stack networks.

Stack-aware tensors are kept flattened as ``(B * S, C, H, W)`` so every slice goes through the same
2-D convolutions in one call; :func:`stack_max` folds the slice axis back and max-fuses it.
"""

from __future__ import annotations

import torch
from torch import nn


def stack_max(x: torch.Tensor, batch: int) -> torch.Tensor:
    """Max over the slices of a flattened stack: (B * S, C, H, W) -> (B, C, H, W).

    The max makes every consumer of the result independent of slice order and slice count.
    """
    return x.unflatten(0, (batch, -1)).amax(dim=1)


def _act() -> nn.Module:
    # Leaky so that no unit can die for good: there is no normalisation layer to re-centre activations.
    return nn.LeakyReLU(0.1, inplace=True)


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions with leaky ReLUs: (N, in_ch, H, W) -> (N, out_ch, H, W)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=1),
            _act(),
            nn.Conv2d(out_ch, out_ch, 3, padding=1),
            _act(),
        )


class FusedConvBlock(nn.Module):
    """A :class:`ConvBlock` whose input is ``cat(slice features, stack max)`` ("layer-wise global pooling").

    The first convolution over the concatenation is split into a per-slice part and a part applied to
    the stack max, which is identical to convolving the concatenated tensor but computes the pooled
    half once per stack instead of once per slice.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.local = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.pooled = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.act1 = _act()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.act2 = _act()

    def forward(self, x: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """Args: x (B * S, C, H, W) per-slice features; pooled (B, C, H, W) their stack max.

        Returns:
            (B * S, out_ch, H, W).
        """
        batch = pooled.shape[0]
        y = self.local(x).unflatten(0, (batch, -1)) + self.pooled(pooled)[:, None]
        y = self.act1(y.flatten(0, 1))
        return self.act2(self.conv2(y))
