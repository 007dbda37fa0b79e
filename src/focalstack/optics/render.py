"""Differentiable spatially varying defocus renderer.

``render_stack(aif (B, C, H, W), sigma (B, S, H, W) px) -> (B, S, C, H, W)`` blurs an all-in-focus
image with a per-pixel PSF for each of S focus settings. Pure PyTorch (any device), exact for the
chosen K x K window: radially symmetric weights depend only on ``dx^2 + dy^2``, so the K*K taps are
grouped into rings of equal radius (see :mod:`focalstack.optics._rings`) and every output is a per-pixel
weighted sum of Kr ring-sum maps (K=7: 10, K=11: 20, K=31: 120). Hand-written backward passes recompute
instead of storing per-tap temporaries.

Two semantics:
- ``"gather"`` (default): the kernel is chosen by the OUTPUT pixel and normalised over the taps inside
  the image. The ring sums do not depend on sigma and are shared by all S slices of an image.
- ``"scatter"``: the kernel is chosen by the SOURCE pixel and normalised over its full window; each
  output is divided by the weight it receives, taps leaving the image are dropped, and sources with
  CoC radius ``2 sigma <= 1`` px stay sharp (the paper's CUDA layer; needed to reproduce the paper).

Window: ``kernel_size=K`` truncates the PSF to K x K (K=7 as in the paper; blur beyond the window
saturates, d out / d sigma -> 0). ``kernel_size=None`` sizes the window from the largest sigma in the
call, ``K = 2 ceil(3 sigma_max) + 1`` (Gaussian) or ``2 ceil(2 sigma_max - 0.5) + 1`` (disc), at most
:data:`MAX_AUTO_KERNEL_SIZE` (blur beyond that saturates as above); the cost grows with Kr.

Large blur: ``mode="levels"`` has gather semantics with an *untruncated* Gaussian of any size, from
separable blurs at a ladder of levels interpolated in variance per pixel (:mod:`focalstack.optics._levels`;
approximate between levels, cost nearly independent of sigma).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from focalstack.optics._gather import GatherRender
from focalstack.optics._levels import render_levels
from focalstack.optics._rings import window_rings
from focalstack.optics._scatter import ScatterRender

#: Largest window ``kernel_size=None`` picks (Gaussian sigma up to 5 px untruncated at 3 sigma).
MAX_AUTO_KERNEL_SIZE = 31

#: Window-based modes (ring decomposition); "levels" is the untruncated large-blur form.
_RING_MODES = {"gather": GatherRender, "scatter": ScatterRender}
_MODES = (*_RING_MODES, "levels")
_PSFS = ("gaussian", "disc")

__all__ = ["MAX_AUTO_KERNEL_SIZE", "auto_kernel_size", "render_stack"]


def auto_kernel_size(max_sigma: float, psf: str = "gaussian", max_size: int = MAX_AUTO_KERNEL_SIZE) -> int:
    """Smallest odd window that holds the PSF of blur ``max_sigma`` (pixels), capped at ``max_size``.

    Gaussian: half width ``ceil(3 sigma)``; disc (radius ``2 sigma`` plus a half-pixel soft edge): the
    largest integer offset with non-zero weight, ``ceil(2 sigma - 0.5)``.
    """
    if psf not in _PSFS:
        raise ValueError(f"psf must be one of {_PSFS}, got {psf!r}")
    if not math.isfinite(max_sigma) or max_sigma < 0:
        raise ValueError(f"max_sigma must be finite and >= 0, got {max_sigma}")
    half = math.ceil(3.0 * max_sigma) if psf == "gaussian" else math.ceil(2.0 * max_sigma - 0.5)
    return min(2 * max(half, 0) + 1, max_size)


def _check_inputs(aif: torch.Tensor, sigma: torch.Tensor) -> float:
    """Validate the inputs; returns the largest sigma."""
    if not isinstance(aif, torch.Tensor) or not isinstance(sigma, torch.Tensor):
        raise ValueError("aif and sigma must be torch tensors")
    if aif.dim() != 4:
        raise ValueError(f"aif must be (B, C, H, W), got shape {tuple(aif.shape)}")
    if sigma.dim() != 4:
        raise ValueError(f"sigma must be (B, S, H, W) (pixels), got shape {tuple(sigma.shape)}")
    if aif.shape[0] != sigma.shape[0] or aif.shape[2:] != sigma.shape[2:]:
        raise ValueError(
            f"aif (B, C, H, W) = {tuple(aif.shape)} and sigma (B, S, H, W) = {tuple(sigma.shape)} must "
            "agree in B, H and W"
        )
    if min(aif.shape) < 1 or sigma.shape[1] < 1:
        raise ValueError(
            f"every dimension must be >= 1, got aif {tuple(aif.shape)}, sigma {tuple(sigma.shape)}"
        )
    if not aif.is_floating_point() or not sigma.is_floating_point():
        raise ValueError(f"aif and sigma must be floating point, got {aif.dtype} and {sigma.dtype}")
    if aif.dtype != sigma.dtype:
        raise ValueError(f"aif and sigma must share a dtype, got {aif.dtype} and {sigma.dtype}")
    if aif.device != sigma.device:
        raise ValueError(f"aif and sigma must be on one device, got {aif.device} and {sigma.device}")
    with torch.no_grad():
        lo, hi = torch.stack(torch.aminmax(sigma)).tolist()  # one pass, one sync; NaN propagates
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("sigma must be finite, got NaN or inf")
    if lo < 0:
        raise ValueError(f"sigma must be >= 0 (pixels), got min {lo:.4g}")
    return hi


def _check_kernel_size(kernel_size: object) -> int:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1:
        raise ValueError(f"kernel_size must be a positive odd int or None, got {kernel_size!r}")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (the window is centred on the pixel), got {kernel_size}")
    return kernel_size


def render_stack(
    aif: torch.Tensor,
    sigma: torch.Tensor,
    *,
    kernel_size: int | None = 7,
    mode: Literal["gather", "scatter", "levels"] = "gather",
    psf: Literal["gaussian", "disc"] = "gaussian",
) -> torch.Tensor:
    """Render a focal stack from an all-in-focus image and per-slice blur maps.

    Differentiable in both inputs (hand-written backward; no double backward). Runs on the device and
    in the dtype of the inputs (float16/bfloat16 are computed in float32 and cast back).

    Args:
        aif: (B, C, H, W) all-in-focus image (any channel count, e.g. sRGB in [0, 1]).
        sigma: (B, S, H, W) Gaussian PSF std in pixels for each output slice, >= 0 and finite
            (``focalstack.optics.depth_to_sigma_px``). The disc PSF has radius ``2 sigma`` px (the CoC
            radius), i.e. the same per-axis std.
        kernel_size: odd window size K in pixels, or None to size it from ``sigma.max()`` (at most
            :data:`MAX_AUTO_KERNEL_SIZE`). Not used by ``"levels"`` (untruncated).
        mode: ``"gather"`` (kernel of the output pixel, fast, default), ``"scatter"`` (kernel of the
            source pixel, as in the paper's CUDA layer) or ``"levels"`` (gather with an untruncated
            Gaussian for blur larger than a window, interpolated between blur levels; Gaussian PSF
            only). See the module docstring.
        psf: ``"gaussian"`` (``exp(-r^2 / 2 sigma^2)``) or ``"disc"`` (uniform disc of radius
            ``2 sigma`` with a one-pixel anti-aliased edge, ``clamp(2 sigma + 0.5 - r, 0, 1)``).

    Returns:
        (B, S, C, H, W) rendered slices, in the range of ``aif`` (every output is a convex combination).

    Raises:
        ValueError: wrong ranks or shapes, mismatched B/H/W, dtype or device, NaN/inf or negative
            sigma, an even or non-positive ``kernel_size``, an unknown ``mode`` / ``psf``, or
            ``mode="levels"`` with the disc PSF.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if psf not in _PSFS:
        raise ValueError(f"psf must be one of {_PSFS}, got {psf!r}")
    if mode == "levels" and psf != "gaussian":
        raise ValueError("mode='levels' renders the Gaussian PSF only (a disc is not separable)")
    max_sigma = _check_inputs(aif, sigma)
    dtype = aif.dtype
    if dtype not in (torch.float32, torch.float64):
        aif, sigma = aif.float(), sigma.float()
    if mode == "levels":
        return render_levels(aif, sigma, max_sigma).to(dtype)
    if kernel_size is None:
        kernel_size = auto_kernel_size(max_sigma, psf, min(MAX_AUTO_KERNEL_SIZE, 2 * max(aif.shape[2:]) - 1))
    kernel_size = _check_kernel_size(kernel_size)
    sigma_grad = torch.is_grad_enabled() and sigma.requires_grad
    out = _RING_MODES[mode].apply(aif, sigma, window_rings(kernel_size), psf, sigma_grad)
    return out.to(dtype)
