"""Focus measure and sub-slice focus peak: the classical sharpness cue, shared by the DFF baseline,
the slice-attention model and the focus-prior loss (one implementation)."""

from __future__ import annotations

import kornia
import torch

#: Floor on the focus measure before taking its log (flat regions).
_FM_EPS = 1e-10


def _check_window(window: int) -> None:
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd number of pixels >= 1, got {window}")


def focus_measure(images: torch.Tensor, *, window: int = 9) -> torch.Tensor:
    """Per-slice sharpness: the squared Laplacian of the grey image, box-averaged over ``window``.

    Args:
        images: (S, C, H, W) stack, C = 1 or 3.
        window: odd averaging window in pixels.

    Returns:
        (S, H, W) focus measure (>= 0, higher = sharper).
    """
    _check_window(window)
    gray = kornia.color.rgb_to_grayscale(images) if images.shape[1] == 3 else images
    energy = kornia.filters.laplacian(gray, 3) ** 2
    return kornia.filters.box_blur(energy, window)[:, 0] if window > 1 else energy[:, 0]


def focus_floor(fm: torch.Tensor) -> torch.Tensor:
    """The focus-measure level of a stack that carries no focus information: its noise level.

    Per stack, the median over pixels of the least sharp slice's focus measure. Where every slice
    measures below this, sharpness differences are noise (or absent); above it they are signal. It
    scales with the image (contrast, resolution, noise), so cues built on it are contrast-invariant,
    unlike an absolute floor that silences low-contrast or noise-free stacks altogether.

    Args:
        fm: (..., S, H, W) focus measure of one stack or a batch of stacks.

    Returns:
        (..., 1, 1, 1) floor (squared-Laplacian units, >= 1e-10), broadcastable against ``fm``.
    """
    low = fm.amin(dim=-3).flatten(-2)
    return low.median(dim=-1).values.clamp_min(_FM_EPS)[..., None, None, None]


def focus_peak(fm: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sub-slice position of each pixel's focus peak.

    Fits a parabola through ``(x_i, log fm_i)`` at the best slice and its two neighbours (at either end
    of the stack: the three end slices) and returns its vertex, clamped to the span of the three
    points; where the fit is not concave the best slice's own position is kept.

    Args:
        fm: (S, H, W) focus measure.
        x: (S,) slice positions (diopters or indices), strictly monotonic, any spacing.

    Returns:
        (H, W) peak positions in the units of ``x``.
    """
    S = fm.shape[0]
    y = torch.log(fm.to(x.dtype).clamp_min(_FM_EPS))
    best = y.argmax(dim=0)
    if S < 3:
        return x[best]
    i = best.clamp(1, S - 2)[None]
    y0, y1, y2 = (y.gather(0, i + k)[0] for k in (-1, 0, 1))
    x0, x1, x2 = (x[i[0] + k] for k in (-1, 0, 1))
    # Divided differences: y = a x^2 + ..., vertex = (x0 + x1) / 2 - f[x0, x1] / (2 a).
    slope01 = (y1 - y0) / (x1 - x0)
    a = ((y2 - y1) / (x2 - x1) - slope01) / (x2 - x0)
    concave = a < 0
    vertex = 0.5 * (x0 + x1) - slope01 / (2.0 * torch.where(concave, a, -1.0))
    vertex = torch.minimum(torch.maximum(vertex, torch.minimum(x0, x2)), torch.maximum(x0, x2))
    return torch.where(concave, vertex, x[best])
