"""Sensor-noise level of a focal stack, estimated from the images alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Immerkaer's mask: the difference of two Laplacians, blind to constant, linear and quadratic intensity;
# white noise of std s gives responses of std 6 s.
_MASK = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))
_MASK_GAIN = 6.0
_MAD_TO_STD = 0.6745  # median |x| of a unit Gaussian


def noise_std(images: torch.Tensor) -> torch.Tensor:
    """Std of additive white noise in a stack, from its least textured slice.

    Per slice and channel: the median absolute response to Immerkaer's mask, scaled to a Gaussian std
    (robust to edges and texture as long as most 3 x 3 neighbourhoods are smooth). The smallest value
    over the slices is kept (the most defocused slice holds the least texture, so it overestimates
    least), as the root mean square over channels.

    Args:
        images: (S, C, H, W) stack, any intensity units (e.g. sRGB in [0, 1]); H, W >= 3.

    Returns:
        () noise std in the images' units.

    Raises:
        ValueError: wrong shape, an image smaller than 3 x 3, or non-finite values.
    """
    if images.dim() != 4 or min(images.shape[-2:]) < 3:
        raise ValueError(f"images must be (S, C, H, W) with H, W >= 3, got {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")
    S, C, H, W = images.shape
    mask = torch.tensor(_MASK, dtype=images.dtype, device=images.device).view(1, 1, 3, 3)
    response = F.conv2d(images.reshape(S * C, 1, H, W), mask).abs().flatten(1)
    std = response.median(dim=1).values.view(S, C) / (_MASK_GAIN * _MAD_TO_STD)
    return std.amin(dim=0).square().mean().sqrt()
