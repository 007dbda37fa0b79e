"""Depth and all-in-focus (AIF) metrics, as defined in ``shared/notes/metrics.md``.

Every metric is computed per image and then averaged over the images of a batch. Depth metrics use the
valid pixels ``V`` only (finite ground truth > 0, optionally below a depth cap), except the explicitly
named ``*_allpix`` variants that reproduce the paper's code (counts divided by all H * W pixels).

Key names returned by :func:`depth_metrics` (depth in metres):

- ``absrel``, ``sqrel``, ``rmse`` (m), ``rmse_log`` (natural log), ``rmse_log10`` (the paper's code),
  ``delta1..3`` (fraction of ``V`` with ``max(p/g, g/p) < 1.25^k``), ``delta1..3_allpix`` (paper);
- ``si_*``: the same after median scaling ``p <- p * median_V(g) / median_V(p)`` (scale-invariant);
- ``error_diopters`` = mean_V ``|1/p - 1/g|`` (1/m) and, when focus distances are given,
  ``error_slices`` = ``error_diopters`` / mean diopter spacing of the stack's focus distances;
- ``ddff_*``: the DDFF-12 convention, evaluated in disparity (here inverse depth, diopters): ``mse``,
  ``rms``, ``logrms`` (ln), ``absrel``, ``sqrel``, ``delta1..3`` (%), ``badpix`` (% with
  ``|p - g| > 0.07``) and ``bump`` (mean of ``min(0.05, ||Hessian(p - g)||_F)`` x 100, the light-field
  benchmark's scaling).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import kornia
import torch

#: DDFF-12 bad-pixel threshold and bumpiness clip, in disparity units.
BADPIX_THRESHOLD = 0.07
BUMP_CLIP = 0.05
#: SSIM window (pixels) for :func:`aif_metrics`.
SSIM_WINDOW = 11


def _as_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    """(H, W), (B, H, W) or (B, 1, H, W) -> float64 (B, H, W)."""
    x = torch.as_tensor(x)
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]
    elif x.dim() == 2:
        x = x[None]
    if x.dim() != 3:
        raise ValueError(f"{name} must be (H, W), (B, H, W) or (B, 1, H, W), got {tuple(x.shape)}")
    return x.detach().to(torch.float64)


def valid_mask(gt_m: torch.Tensor, max_depth_m: float | None = None) -> torch.Tensor:
    """Valid ground-truth pixels: finite, > 0 and (optionally) <= ``max_depth_m``.

    Args:
        gt_m: ground-truth depth in metres, any shape (0 marks invalid pixels).
        max_depth_m: optional depth cap in metres.

    Returns:
        Boolean mask of the same shape.
    """
    mask = torch.isfinite(gt_m) & (gt_m > 0)
    if max_depth_m is not None:
        if not max_depth_m > 0:
            raise ValueError(f"max_depth_m must be > 0, got {max_depth_m}")
        mask &= gt_m <= max_depth_m
    return mask


def mean_diopter_spacing(focus_m: Sequence[float] | torch.Tensor) -> float:
    """Mean spacing of a stack's focus distances in diopters, ``(max 1/F - min 1/F) / (S - 1)``.

    Args:
        focus_m: (S,) focus distances in metres, S >= 2, distinct.

    Returns:
        Mean slice spacing in diopters (1/m).
    """
    f = torch.as_tensor(focus_m, dtype=torch.float64).flatten()
    if f.numel() < 2 or not torch.isfinite(f).all() or (f <= 0).any():
        raise ValueError(f"focus_m must hold >= 2 finite distances > 0 metres, got {f.tolist()}")
    dio = 1.0 / f
    spacing = float(dio.max() - dio.min()) / (f.numel() - 1)
    if spacing <= 0:
        raise ValueError(f"focus distances must not all be equal, got {f.tolist()}")
    return spacing


def _ratio_metrics(p: torch.Tensor, g: torch.Tensor, prefix: str = "") -> dict[str, float]:
    """Standard depth errors over 1-D tensors of valid predictions ``p`` and ground truth ``g``."""
    diff = p - g
    log_diff = torch.log(p) - torch.log(g)
    ratio = torch.maximum(p / g, g / p)
    out = {
        "absrel": (diff.abs() / g).mean(),
        "sqrel": (diff**2 / g).mean(),
        "rmse": (diff**2).mean().sqrt(),
        "rmse_log": (log_diff**2).mean().sqrt(),
        "rmse_log10": ((log_diff / math.log(10.0)) ** 2).mean().sqrt(),
    }
    for k in (1, 2, 3):
        out[f"delta{k}"] = (ratio < 1.25**k).double().mean()
    return {prefix + k: float(v) for k, v in out.items()}


def hessian_frobenius(x: torch.Tensor) -> torch.Tensor:
    """Frobenius norm of the per-pixel Hessian (central second differences, kornia).

    Args:
        x: (B, H, W) map.

    Returns:
        (B, H, W) ``sqrt(f_xx^2 + 2 f_xy^2 + f_yy^2)`` in units of ``x`` per pixel^2.
    """
    h = kornia.filters.spatial_gradient(x[:, None], mode="diff", order=2)[:, 0]  # (B, 3, H, W)
    return (h[:, 0] ** 2 + 2.0 * h[:, 1] ** 2 + h[:, 2] ** 2).sqrt()


def _interior(mask: torch.Tensor) -> torch.Tensor:
    """Pixels whose whole 3x3 neighbourhood is valid (so second differences only see valid depth)."""
    m = mask[:, None].double()
    eroded = -torch.nn.functional.max_pool2d(-m, 3, stride=1, padding=1)
    eroded[..., 0, :] = 0
    eroded[..., -1, :] = 0
    eroded[..., :, 0] = 0
    eroded[..., :, -1] = 0
    return eroded[:, 0] > 0.5


def ddff_metrics(pred_disp: torch.Tensor, gt_disp: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """DDFF-12 metrics in disparity, per image then averaged.

    Args:
        pred_disp: (B, H, W) predicted disparity (any unit; focalstack passes diopters), > 0 on ``mask``.
        gt_disp: (B, H, W) ground-truth disparity, same unit.
        mask: (B, H, W) valid pixels.

    Returns:
        ``ddff_mse``, ``ddff_rms``, ``ddff_logrms`` (ln), ``ddff_absrel``, ``ddff_sqrel``,
        ``ddff_delta1..3`` (%), ``ddff_badpix`` (% of pixels with ``|p - g| > 0.07``), ``ddff_bump``
        (mean over interior valid pixels of ``min(0.05, ||H(p - g)||_F)``, x 100).
    """
    bump = hessian_frobenius(torch.where(mask, pred_disp - gt_disp, 0.0)).clamp_max(BUMP_CLIP)
    inner = _interior(mask)
    per_image = []
    for b in range(pred_disp.shape[0]):
        m = mask[b]
        if not m.any():
            continue
        p, g = pred_disp[b][m], gt_disp[b][m]
        std = _ratio_metrics(p, g)  # the standard formulas, applied to disparity
        vals = {
            "ddff_mse": std["rmse"] ** 2,
            "ddff_rms": std["rmse"],
            "ddff_logrms": std["rmse_log"],
            "ddff_absrel": std["absrel"],
            "ddff_sqrel": std["sqrel"],
            "ddff_badpix": 100.0 * float((p - g).abs().gt(BADPIX_THRESHOLD).double().mean()),
            "ddff_bump": float(100.0 * bump[b][inner[b]].mean()) if inner[b].any() else math.nan,
        }
        for k in (1, 2, 3):
            vals[f"ddff_delta{k}"] = 100.0 * std[f"delta{k}"]
        per_image.append(vals)
    return _average(per_image)


def _average(per_image: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each key over images, ignoring NaN entries (a metric undefined for that image)."""
    if not per_image:
        return {}
    out = {}
    for key in per_image[0]:
        vals = [d[key] for d in per_image if not math.isnan(d[key])]
        out[key] = sum(vals) / len(vals) if vals else math.nan
    return out


def depth_metrics(
    pred_m: torch.Tensor,
    gt_m: torch.Tensor,
    *,
    focus_m: Sequence[float] | torch.Tensor | None = None,
    max_depth_m: float | None = None,
) -> dict[str, float]:
    """Every depth metric of ``metrics.md`` (key names in the module docstring), per image then averaged.

    Args:
        pred_m: predicted depth in metres, (H, W), (B, H, W) or (B, 1, H, W); finite and > 0 wherever
            the ground truth is valid.
        gt_m: ground-truth depth in metres, same shape; 0, negative or non-finite = invalid.
        focus_m: (S,) focus distances of the stack in metres; enables ``error_slices``.
        max_depth_m: optional cap; ground truth beyond it is invalid.

    Returns:
        Dict of metric name -> float, plus ``valid_fraction`` and ``num_images`` (images with at least
        one valid pixel; images without any are skipped).

    Raises:
        ValueError: shape mismatch, no valid pixel at all, or a non-positive / non-finite prediction on
            a valid pixel.
    """
    p_all, g_all = _as_batch(pred_m, "pred_m"), _as_batch(gt_m, "gt_m")
    if p_all.shape != g_all.shape:
        raise ValueError(f"pred_m {tuple(p_all.shape)} and gt_m {tuple(g_all.shape)} differ in shape")
    mask = valid_mask(g_all, max_depth_m)
    if not mask.any():
        raise ValueError("ground truth has no valid pixel (finite, > 0, within max_depth_m)")
    bad = mask & ~(torch.isfinite(p_all) & (p_all > 0))
    if bad.any():
        raise ValueError(f"prediction must be finite and > 0 on valid pixels; {int(bad.sum())} are not")
    spacing = mean_diopter_spacing(focus_m) if focus_m is not None else None

    per_image = []
    for b in range(p_all.shape[0]):
        m = mask[b]
        if not m.any():
            continue
        p, g = p_all[b][m], g_all[b][m]
        vals = _ratio_metrics(p, g)
        for k in (1, 2, 3):
            # The paper's code divides the count of good pixels by all H * W pixels.
            vals[f"delta{k}_allpix"] = vals[f"delta{k}"] * m.double().mean().item()
        scale = g.median() / p.median()
        vals.update(_ratio_metrics(p * scale, g, prefix="si_"))
        vals["error_diopters"] = float((1.0 / p - 1.0 / g).abs().mean())
        if spacing is not None:
            vals["error_slices"] = vals["error_diopters"] / spacing
        vals["valid_fraction"] = float(m.double().mean())
        per_image.append(vals)
    out = _average(per_image)
    safe_p = torch.where(mask, p_all, 1.0)
    out.update(ddff_metrics(1.0 / safe_p, 1.0 / torch.where(mask, g_all, 1.0), mask))
    out["num_images"] = float(len(per_image))
    return out


def _as_image_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    """(C, H, W) or (B, C, H, W) -> float64 (B, C, H, W)."""
    x = torch.as_tensor(x)
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4:
        raise ValueError(f"{name} must be (C, H, W) or (B, C, H, W), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} has non-finite values")
    return x.detach().to(torch.float64)


def psnr(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image for values in [0, 1]: (B, C, H, W) x 2 -> (B,); +inf for identical images."""
    mse = ((pred - gt) ** 2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse)


def ssim(pred: torch.Tensor, gt: torch.Tensor, window: int = SSIM_WINDOW) -> torch.Tensor:
    """Mean SSIM per image (kornia, Gaussian window, data range 1): (B, C, H, W) x 2 -> (B,)."""
    return kornia.metrics.ssim(pred, gt, window, max_val=1.0).flatten(1).mean(dim=1)


def mean_gradient(img: torch.Tensor) -> torch.Tensor:
    """No-reference sharpness MG = mean sqrt((dx^2 + dy^2) / 2), forward differences, per image.

    Args:
        img: (B, C, H, W) image (channels averaged after the per-pixel value).

    Returns:
        (B,) MG in intensity units per pixel; higher = sharper (and noisier).
    """
    dx = img[..., :-1, 1:] - img[..., :-1, :-1]
    dy = img[..., 1:, :-1] - img[..., :-1, :-1]
    return ((dx**2 + dy**2) / 2.0).sqrt().flatten(1).mean(dim=1)


def spatial_frequency(img: torch.Tensor) -> torch.Tensor:
    """No-reference sharpness SF = sqrt(mean dx^2 + mean dy^2), forward differences, per image.

    Args:
        img: (B, C, H, W) image.

    Returns:
        (B,) SF in intensity units per pixel; higher = sharper (and noisier).
    """
    dx = img[..., :, 1:] - img[..., :, :-1]
    dy = img[..., 1:, :] - img[..., :-1, :]
    return ((dx**2).flatten(1).mean(dim=1) + (dy**2).flatten(1).mean(dim=1)).sqrt()


def aif_metrics(pred: torch.Tensor, gt: torch.Tensor | None = None) -> dict[str, float]:
    """AIF quality, per image then averaged.

    Args:
        pred: (C, H, W) or (B, C, H, W) all-in-focus image, sRGB in [0, 1].
        gt: same shape ground truth, or None.

    Returns:
        ``aif_mg`` and ``aif_sf`` (no-reference, higher = sharper) always; ``aif_psnr`` (dB) and
        ``aif_ssim`` when ``gt`` is given (PSNR of identical images is +inf).
    """
    p = _as_image_batch(pred, "pred")
    out = {
        "aif_mg": float(mean_gradient(p).mean()),
        "aif_sf": float(spatial_frequency(p).mean()),
    }
    if gt is not None:
        g = _as_image_batch(gt, "gt")
        if g.shape != p.shape:
            raise ValueError(f"pred {tuple(p.shape)} and gt {tuple(g.shape)} differ in shape")
        out["aif_psnr"] = float(psnr(p, g).mean())
        out["aif_ssim"] = float(ssim(p, g).mean())
    return out
