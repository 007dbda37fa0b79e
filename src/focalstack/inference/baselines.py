"""Classical baselines: depth from focus (DFF) and Laplacian-pyramid focus stacking (no learning).

Depth from focus: a focus measure per slice (squared Laplacian of the grey image, averaged over a
``window`` x ``window`` box), the per-pixel best slice, and a sub-slice refinement by fitting a parabola
to the log focus measure of the best slice and its two neighbours (a Gaussian peak model). The fit is
done in diopters when the focus distances are known (:func:`dff_depth`, metres) and in slice index
units when only the order is known (:func:`dff_slice_index`).

Functions accept a :class:`~focalstack.data.stack.FocalStack` or a bare ``(S, C, H, W)`` image tensor
(then ``focus_m`` is passed separately). Device and dtype follow the images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import kornia
import torch
import torch.nn.functional as F

from focalstack.utils.focus import focus_measure, focus_peak

if TYPE_CHECKING:
    from focalstack.data.stack import FocalStack


def _unpack(
    stack: FocalStack | torch.Tensor, focus_m: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(images (S, C, H, W), focus_m (S,) float64 or None) from a FocalStack or a tensor."""
    if isinstance(stack, torch.Tensor):
        images = stack
    else:
        images = stack.images
        focus_m = stack.focus_m if focus_m is None else focus_m
    if images.dim() != 4 or images.shape[0] < 2 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape)
        raise ValueError(f"expected a stack of >= 2 images (S, C, H, W) with C in (1, 3), got {shape}")
    if focus_m is not None:
        focus_m = torch.as_tensor(focus_m, dtype=torch.float64, device=images.device).flatten()
        if focus_m.numel() != images.shape[0]:
            raise ValueError(f"{focus_m.numel()} focus distances for {images.shape[0]} slices")
        if not torch.isfinite(focus_m).all() or (focus_m <= 0).any():
            raise ValueError("focus distances must be finite and > 0 metres")
        if torch.unique(focus_m).numel() != focus_m.numel():
            raise ValueError(f"focus distances must be distinct, got {focus_m.tolist()}")
    return images, focus_m


def dff_slice_index(stack: FocalStack | torch.Tensor, *, window: int = 9) -> torch.Tensor:
    """Depth from focus in slice units, for stacks whose focus distances are unknown (order only).

    The result is a continuous slice coordinate: 0 = in focus in the first slice, S - 1 = in the last;
    2.5 = halfway between slices 2 and 3 (assuming evenly spaced slices).

    Args:
        stack: FocalStack or (S, C, H, W) images.
        window: odd focus-measure window in pixels.

    Returns:
        (H, W) float slice coordinate in [0, S - 1], dtype of the images.
    """
    images, _ = _unpack(stack)
    idx = torch.arange(images.shape[0], dtype=torch.float64, device=images.device)
    return focus_peak(focus_measure(images, window=window), idx).to(images.dtype)


def dff_depth(
    stack: FocalStack | torch.Tensor, *, focus_m: torch.Tensor | None = None, window: int = 9
) -> torch.Tensor:
    """Depth from focus in metres (sub-slice peak interpolation in diopters).

    Args:
        stack: FocalStack with focus distances, or (S, C, H, W) images together with ``focus_m``.
        focus_m: (S,) focus distances in metres (overrides the stack's).
        window: odd focus-measure window in pixels.

    Returns:
        (H, W) depth in metres, between the nearest and farthest focus distance, dtype of the images.

    Raises:
        ValueError: focus distances unknown (use :func:`dff_slice_index`) or invalid.
    """
    images, focus = _unpack(stack, focus_m)
    if focus is None:
        raise ValueError("dff_depth needs focus distances; use dff_slice_index for order-only stacks")
    diopters = focus_peak(focus_measure(images, window=window), 1.0 / focus)
    return (1.0 / diopters).to(images.dtype)


def _up(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=size[-2:], mode="bilinear", align_corners=False)


def _majority(choice: torch.Tensor, num: int, size: int = 3) -> torch.Tensor:
    """Consistency check: replace each choice by the most frequent one in its size x size window."""
    votes = F.one_hot(choice, num).permute(0, 3, 1, 2).to(torch.float32)  # (1, S, H, W)
    return kornia.filters.box_blur(votes, size).argmax(dim=1)


def _pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Gaussian pyramid ``[images, pyrdown(images), ...]`` with ``levels + 1`` entries."""
    gauss = [images]
    for _ in range(levels):
        gauss.append(kornia.geometry.transform.pyrdown(gauss[-1]))
    return gauss


def _details(gauss: list[torch.Tensor]) -> list[torch.Tensor]:
    """Laplacian-pyramid detail levels (S, C, h, w) of a Gaussian pyramid, finest first."""
    return [g - _up(coarser, g.shape) for g, coarser in zip(gauss[:-1], gauss[1:])]


def _activity(detail: torch.Tensor) -> torch.Tensor:
    """(S, h, w) local detail energy: absolute coefficients summed over channels, 3 x 3 averaged."""
    return kornia.filters.box_blur(detail.abs().sum(dim=1, keepdim=True), 3)[:, 0]


def _noise_floors(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Per detail level, the median over pixels of the largest activity over the slices that noise alone
    gives: a stack of white noise with the images' estimated std (fixed seed), through the same pyramid."""
    from focalstack.utils.noise import noise_std

    g = torch.Generator(device=images.device).manual_seed(0)
    noise = torch.randn(images.shape, generator=g, device=images.device, dtype=images.dtype)
    details = _details(_pyramid(noise * noise_std(images), levels))
    return [_activity(d).amax(dim=0).median() for d in details]


def focus_stack_aif(
    stack: FocalStack | torch.Tensor, *, levels: int | None = None, noise_aware: bool = False
) -> torch.Tensor:
    """All-in-focus image by Laplacian-pyramid fusion.

    Each detail level takes, per pixel, the slice with the largest local detail energy (absolute
    Laplacian-pyramid coefficient summed over channels, 3x3 averaged), then a 3x3 majority vote makes
    neighbouring choices consistent; the coarsest (base) level is the average of all slices.

    With ``noise_aware``, detail no stronger than noise is not picked: where a level's largest energy
    over the slices is at most the largest that noise alone gives (the median over pixels of it for
    white noise of the stack's estimated std, :func:`focalstack.utils.noise.noise_std`), the slices'
    mean detail is used instead, and the picked detail takes over linearly up to twice that energy.
    Picking the largest of S noisy coefficients keeps the strongest noise, and in weak texture that
    noise decides what the image looks like; their mean averages it away.

    Args:
        stack: FocalStack or (S, C, H, W) images in [0, 1].
        levels: number of detail levels (default: halve until the short side is below 16 px, max 6).
        noise_aware: leave out detail at the noise level (above); deterministic (fixed noise draw).

    Returns:
        (C, H, W) fused image clipped to [0, 1].
    """
    images, _ = _unpack(stack)
    S = images.shape[0]
    if levels is None:
        levels, side = 0, min(images.shape[-2:])
        while side >= 32 and levels < 6:
            side, levels = side // 2, levels + 1
    if levels < 0 or min(images.shape[-2:]) < 2**levels:
        raise ValueError(f"levels must be in [0, log2(min(H, W))], got {levels} for {tuple(images.shape)}")
    gauss = _pyramid(images, levels)
    details = _details(gauss)
    floors = _noise_floors(images, levels) if noise_aware else [None] * levels
    fused = gauss[-1].mean(dim=0, keepdim=True)
    for detail, floor in zip(reversed(details), reversed(floors)):
        activity = _activity(detail)
        choice = _majority(activity.argmax(dim=0)[None], S)  # (1, h, w)
        picked = detail.gather(0, choice[:, None].expand(1, detail.shape[1], -1, -1))
        if floor is not None:
            weight = (activity.amax(dim=0) / floor.clamp_min(1e-12) - 1.0).clamp(0.0, 1.0)
            picked = torch.lerp(detail.mean(dim=0, keepdim=True), picked, weight[None, None])
        fused = _up(fused, picked.shape) + picked
    return fused[0].clamp(0.0, 1.0)


def dff_predict(stack: FocalStack, *, window: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    """Classical prediction: ``(depth_m (H, W) from dff_depth, aif (3, H, W) from focus_stack_aif)``."""
    return dff_depth(stack, window=window), focus_stack_aif(stack)
