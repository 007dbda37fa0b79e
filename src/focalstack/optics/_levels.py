"""Untruncated Gaussian gather rendering for large blur, by interpolation between blur levels.

The ring renderer is exact inside its K x K window, but its cost grows with the number of rings
(~K^2 / 8), so blur of many pixels (macro stacks, light fields, phones at full resolution) needs another
form. Here the image is blurred at a ladder of constant levels ``sigma_j`` with *separable, untruncated*
Gaussians (normalised over the taps inside the image, so each level is exactly the gather render for
constant blur ``sigma_j``), and each output pixel linearly interpolates
the two levels around its own sigma **in variance** (``sigma^2``): Gaussian blurs compose by adding
variances, so this is exact at the levels, exact to first order as sigma -> 0, and accurate in between
for a ladder ratio close to 1 (the error is measured in ``benchmarks/render.py``).

Everything is differentiable through autograd (d out / d sigma is piecewise smooth, continuous). Cost:
one separable blur per level (independent of S) plus one interpolation per slice; memory: the levels.
"""

from __future__ import annotations

import torch

#: Smallest non-zero level (pixels); below it the output interpolates the image and this level.
MIN_LEVEL_SIGMA = 0.25
#: Ratio between consecutive levels.
LEVEL_RATIO = 1.1


def level_sigmas(max_sigma: float, ratio: float = LEVEL_RATIO) -> list[float]:
    """Blur levels (px) ``[0, MIN_LEVEL_SIGMA, MIN_LEVEL_SIGMA * ratio, ...]``, the last >= max_sigma."""
    levels = [0.0, MIN_LEVEL_SIGMA]
    while levels[-1] < max_sigma:
        levels.append(levels[-1] * ratio)
    return levels


def _blur_matrix(n: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """(n, n) untruncated 1-D Gaussian blur with each row normalised over the n in-image taps."""
    x = torch.arange(n, dtype=like.dtype, device=like.device)
    g = torch.exp(-0.5 * ((x[:, None] - x[None, :]) / sigma) ** 2)
    return g / g.sum(dim=1, keepdim=True)


def blur_separable(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Untruncated Gaussian blur of constant ``sigma`` (pixels), normalised over the in-image taps.

    The 2-D weights and their in-image normaliser both factor into rows and columns, so the blur is two
    matrix products with row-normalised Gaussian matrices (BLAS, with a cheap backward; O(H + W) work
    per pixel, which suits images up to a few hundred pixels a side -- tile larger ones).

    Args:
        image: (N, C, H, W).

    Returns:
        (N, C, H, W): for every pixel, the Gaussian-weighted mean of all in-image pixels.
    """
    if sigma <= 0:
        return image
    h, w = image.shape[-2:]
    return _blur_matrix(h, sigma, image) @ image @ _blur_matrix(w, sigma, image).T


def render_levels(
    aif: torch.Tensor, sigma: torch.Tensor, max_sigma: float, ratio: float = LEVEL_RATIO
) -> torch.Tensor:
    """Gather rendering with an untruncated Gaussian PSF via blur levels (inputs already validated).

    Args:
        aif: (B, C, H, W) image.
        sigma: (B, S, H, W) Gaussian std in pixels per output slice, finite and >= 0.
        max_sigma: ``sigma.max()`` (the caller has it from validation; one device sync fewer).
        ratio: ratio between consecutive blur levels (> 1; smaller is more accurate and slower).

    Returns:
        (B, S, C, H, W) rendered slices.
    """
    levels = level_sigmas(max_sigma, ratio)
    stack = torch.stack([blur_separable(aif, s) for s in levels], dim=1)  # (B, J, C, H, W)
    var = torch.tensor([s * s for s in levels], dtype=sigma.dtype, device=sigma.device)
    v = sigma * sigma
    lo = (torch.searchsorted(var, v.detach().contiguous(), right=True) - 1).clamp(0, len(levels) - 2)
    alpha = (v - var[lo]) / (var[lo + 1] - var[lo])
    c = aif.shape[1]
    index = lo.unsqueeze(2).expand(-1, -1, c, -1, -1)
    below, above = stack.gather(1, index), stack.gather(1, index + 1)
    return torch.lerp(below, above, alpha.unsqueeze(2).to(aif.dtype))
