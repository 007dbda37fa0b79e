"""Differentiable occlusion-aware defocus: depth cut into soft fronto-parallel layers, composited.

``render_layered(image (B, C, H, W), diopter (B, 1, H, W), diopter_range (B, 2), sigma (B, S, L))``
renders what the per-pixel renderers (:func:`focalstack.optics.render_stack`) cannot: a near surface's
blur spreading *over* a farther one, while the farther one's blur stays hidden behind it. Inverse depth
is split over ``L`` layers spread evenly over ``diopter_range``: each pixel's weight goes to its two
nearest layers, linearly (so depth gets a gradient through the weights); each layer's premultiplied
colour and weight are blurred with that layer's uniform PSF (by FFT), composited far to near with the
"over" operator, and divided by the composited weight (which fills, from the surrounding colours, what a
near surface's blurred edge uncovers of a farther one whose hidden part is unknown).

For a fronto-parallel scene this is a uniform blur with the PSF of :func:`focalstack.data.synth.psf_kernel`
(untruncated; mirrored borders). The layers must be fine enough that the PSF radius changes by a fraction
of a pixel between neighbours (:func:`layer_count`): a pixel between two layers is rendered with both
layers' blur, the nearer one weighing more (the over operator).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from focalstack.optics._psf import GAUSSIAN_SIGMA_FLOOR

__all__ = ["layer_count", "render_layered"]

_PSFS = ("gaussian", "disc")


def layer_count(radius_span_px: float, step_px: float, max_layers: int) -> int:
    """Layers for a PSF radius that varies by ``radius_span_px`` over the range, ``step_px`` apart.

    Args:
        radius_span_px: total variation of the PSF radius (pixels) over the layers' diopter range, the
            largest over the slices.
        step_px: the largest radius change wanted between neighbouring layers, pixels (> 0).
        max_layers: upper bound (>= 2).

    Returns:
        An integer in [2, max_layers].
    """
    if not step_px > 0 or max_layers < 2:
        raise ValueError(f"need step_px > 0 and max_layers >= 2, got {step_px}, {max_layers}")
    if not math.isfinite(radius_span_px) or radius_span_px < 0:
        raise ValueError(f"radius_span_px must be finite and >= 0, got {radius_span_px}")
    return int(min(max_layers, max(2, math.ceil(radius_span_px / step_px) + 1)))


def render_layered(
    image: torch.Tensor,
    diopter: torch.Tensor,
    diopter_range: torch.Tensor,
    sigma_px: torch.Tensor,
    psf: str = "disc",
    eps: float = 1e-4,
) -> torch.Tensor:
    """Blur ``image`` for S focus settings with occlusion between ``L`` depth layers.

    Args:
        image: (B, C, H, W) values to blur (linear light for physical blur).
        diopter: (B, 1, H, W) inverse depth of each pixel, 1/m; values outside ``diopter_range`` count
            as its ends.
        diopter_range: (B, 2) (far, near) inverse depth in 1/m, far < near: the first and last layer.
        sigma_px: (B, S, L) PSF std in pixels of each layer in each slice (layer ``l`` at inverse depth
            ``far + (near - far) * l / (L - 1)``); the disc has radius ``2 sigma``.
        psf: ``"disc"`` or ``"gaussian"``.
        eps: floor of the composited weight the result is divided by.

    Returns:
        (B, S, C, H, W).

    Raises:
        ValueError: mismatched shapes, fewer than 2 layers, an empty or reversed range, negative or
            non-finite sigma, or an unknown PSF.
    """
    _check(image, diopter, diopter_range, sigma_px, psf)
    B, C, H, W = image.shape
    L = sigma_px.shape[2]
    weights = _layer_weights(diopter, diopter_range, L)  # (B, L, H, W)
    # (B, L, C + 1, H, W): premultiplied colour and weight of each layer
    layers = torch.cat([image[:, None] * weights[:, :, None], weights[:, :, None]], dim=2)
    pad = _reach(sigma_px, psf)
    mode = "reflect" if pad < min(H, W) else "replicate"
    padded = F.pad(layers.flatten(0, 1), (pad, pad, pad, pad), mode=mode)
    # zeros up to a fast FFT size: no kept pixel's PSF reaches them on the periodic grid
    Hp, Wp = _fft_size(H + 2 * pad), _fft_size(W + 2 * pad)
    padded = F.pad(padded, (0, Wp - W - 2 * pad, 0, Hp - H - 2 * pad)).unflatten(0, (B, L))
    spectra = torch.fft.rfft2(padded)  # (B, L, C+1, Hp, Wp // 2 + 1)
    kernels = _kernel_spectra(sigma_px, psf, Hp, Wp)  # (B, S, L, Hp, Wp // 2 + 1), real
    out = []
    for s in range(sigma_px.shape[1]):
        blurred = torch.fft.irfft2(spectra * kernels[:, s, :, None], s=(Hp, Wp))
        # unbind once: indexing each layer would cost a zero-filled full-size gradient per layer
        far, *nearer = blurred[..., pad : pad + H, pad : pad + W].unbind(1)
        acc = far
        for layer in nearer:  # far to near: each nearer layer covers what lies behind it
            acc = layer + (1.0 - layer[:, C:]) * acc
        out.append(acc[:, :C] / acc[:, C:].clamp_min(eps))
    return torch.stack(out, dim=1)


def _check(
    image: torch.Tensor, diopter: torch.Tensor, diopter_range: torch.Tensor, sigma_px: torch.Tensor, psf: str
) -> None:
    if image.dim() != 4 or diopter.dim() != 4 or diopter.shape[1] != 1:
        got = f"{tuple(image.shape)}, {tuple(diopter.shape)}"
        raise ValueError(f"image must be (B, C, H, W) and diopter (B, 1, H, W), got {got}")
    B, _, H, W = image.shape
    if tuple(diopter.shape) != (B, 1, H, W):
        raise ValueError(f"diopter must be (B, 1, H, W) = {(B, 1, H, W)}, got {tuple(diopter.shape)}")
    if tuple(diopter_range.shape) != (B, 2) or not bool((diopter_range[:, 1] > diopter_range[:, 0]).all()):
        raise ValueError(
            f"diopter_range must be (B, 2) = ({B}, 2) with far < near, got {diopter_range.tolist()}"
        )
    if not bool(torch.isfinite(diopter).all()):
        raise ValueError("diopter must be finite (depth > 0 everywhere)")
    if sigma_px.dim() != 3 or sigma_px.shape[0] != B or sigma_px.shape[2] < 2:
        raise ValueError(f"sigma_px must be (B, S, L) with B = {B} and L >= 2, got {tuple(sigma_px.shape)}")
    if not bool(torch.isfinite(sigma_px).all()) or bool((sigma_px < 0).any()):
        raise ValueError("sigma_px must be finite and >= 0")
    if psf not in _PSFS:
        raise ValueError(f"psf must be one of {_PSFS}, got {psf!r}")


def _layer_weights(diopter: torch.Tensor, diopter_range: torch.Tensor, L: int) -> torch.Tensor:
    """(B, L, H, W) weights summing to 1 per pixel: linear between the two nearest layers."""
    far, near = diopter_range[:, :1, None, None], diopter_range[:, 1:, None, None]
    pos = ((diopter - far) / (near - far)).clamp(0.0, 1.0) * (L - 1)  # (B, 1, H, W)
    index = torch.arange(L, device=diopter.device, dtype=diopter.dtype).view(1, L, 1, 1)
    return (1.0 - (pos - index).abs()).clamp_min(0.0)


def _reach(sigma_px: torch.Tensor, psf: str) -> int:
    """Pixels beyond which every layer's PSF is zero (disc) or negligible (Gaussian: 6 sigma, where the
    mass left outside, about 1e-8, would wrap around the periodic FFT grid)."""
    top = float(sigma_px.detach().max())
    return int(math.ceil(2.0 * top + 0.5) if psf == "disc" else math.ceil(6.0 * top)) + 1


def _fft_size(n: int) -> int:
    """The least m >= n whose only prime factors are 2, 3 and 5 (fast FFT lengths)."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _kernel_spectra(sigma_px: torch.Tensor, psf: str, Hp: int, Wp: int) -> torch.Tensor:
    """(B, S, L, Hp, Wp // 2 + 1) Fourier transforms of the normalised PSFs, centred at the origin.

    The PSFs are even, so their transforms are real. Differentiable in ``sigma_px``. Built on every call:
    it costs about 3 % of a render (caching it saved nothing measurable).
    """
    dev, dt = sigma_px.device, sigma_px.dtype
    y = torch.arange(Hp, device=dev, dtype=dt)
    x = torch.arange(Wp, device=dev, dtype=dt)
    y, x = torch.minimum(y, Hp - y), torch.minimum(x, Wp - x)  # distances on the periodic grid
    r2 = y[:, None] ** 2 + x[None, :] ** 2
    s = sigma_px[..., None, None]
    if psf == "disc":
        w = (2.0 * s + 0.5 - r2.sqrt()).clamp(0.0, 1.0)
    else:
        w = torch.exp(-r2 / (2.0 * s.clamp_min(GAUSSIAN_SIGMA_FLOOR) ** 2))
    w = w / w.sum(dim=(-2, -1), keepdim=True)
    return torch.fft.rfft2(w).real
