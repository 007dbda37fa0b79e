"""Sensor-noise level of a focal stack, estimated from the images alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Immerkaer's mask: the difference of two Laplacians, blind to constant, linear and quadratic intensity;
# white noise of std s gives responses of std 6 s.
_MASK = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))
_MASK_GAIN = 6.0
_MAD_TO_STD = 0.6745  # median |x| of a unit Gaussian


def _check(images: torch.Tensor) -> None:
    if images.dim() != 4 or min(images.shape[-2:]) < 3:
        raise ValueError(f"images must be (S, C, H, W) with H, W >= 3, got {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")


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
    _check(images)
    S, C, H, W = images.shape
    mask = torch.tensor(_MASK, dtype=images.dtype, device=images.device).view(1, 1, 3, 3)
    response = F.conv2d(images.reshape(S * C, 1, H, W), mask).abs().flatten(1)
    std = response.median(dim=1).values.view(S, C) / (_MASK_GAIN * _MAD_TO_STD)
    return std.amin(dim=0).square().mean().sqrt()


def noise_profile(images: torch.Tensor, levels: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise std as a function of intensity (signal-dependent noise), from the images alone.

    Photon shot noise grows with the signal, and the sRGB curve amplifies noise in the shadows, so an
    sRGB stack is noisier in some intensities than in others. The pixels are split into ``levels`` bins
    of equal count by their local (3 x 3) mean intensity over channels; per bin the robust std is
    estimated as in :func:`noise_std` (median absolute Immerkaer response, least over the slices).

    Args:
        images: (S, C, H, W) stack, any intensity units (e.g. sRGB in [0, 1]); H, W >= 3.
        levels: number of intensity bins (>= 1).

    Returns:
        ``(intensity, std)``, each (levels,): the median local intensity of each bin (non-decreasing;
        neighbouring bins share one where a large flat region fills both) and its noise std, in the
        images' units.

    Raises:
        ValueError: wrong shape, an image smaller than 3 x 3, non-finite values or ``levels < 1``.
    """
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    _check(images)
    S, C, H, W = images.shape
    mask = torch.tensor(_MASK, dtype=images.dtype, device=images.device).view(1, 1, 3, 3)
    response = F.conv2d(images.reshape(S * C, 1, H, W), mask).abs().view(S, C, -1)
    local = F.avg_pool2d(images.mean(dim=1, keepdim=True), 3, stride=1).view(S, -1)
    # equal-count bins by rank over all slices' pixels, so every bin has pixels to estimate from
    order = local.flatten().argsort()
    bin_of = torch.empty_like(order)
    bin_of[order] = torch.arange(order.numel(), device=images.device) * levels // order.numel()
    bin_of = bin_of.view(S, -1)
    intensity, std = [], []
    for b in range(levels):
        inside = bin_of == b
        intensity.append(local[inside].median())
        # per slice; a slice without pixels in this bin gives +inf and never wins the least
        per_slice = [
            response[s][:, inside[s]].median() if inside[s].any() else images.new_tensor(float("inf"))
            for s in range(S)
        ]
        std.append(torch.stack(per_slice).amin() / (_MASK_GAIN * _MAD_TO_STD))
    return torch.stack(intensity), torch.stack(std)
