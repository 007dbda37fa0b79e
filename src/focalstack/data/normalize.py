"""Camera-independent normalisation of focus distances and depth (see docs/CONVENTIONS.md).

The network never sees metres: focus distances enter as ``u`` in [0, 1] (inverse distance relative to
the stack's working range) and depth leaves as ``t`` in [0, 1] on the same axis. Everything here is a
pure function of tensors; shapes are documented per function.
"""

from __future__ import annotations

import torch

#: Smallest working-range diopter: depth is capped at 1 km.
MIN_DIOPTER = 1e-3


def _check_focus(focus_m: torch.Tensor) -> None:
    if focus_m.dim() != 2 or focus_m.shape[1] < 2:
        raise ValueError(f"focus_m must be (B, S) with S >= 2, got {tuple(focus_m.shape)}")
    if not torch.isfinite(focus_m).all() or (focus_m <= 0).any():
        raise ValueError("focus distances must be finite and > 0 metres")


def working_range_m(focus_m: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Default depth range of each stack: its focus range in diopters widened by ``margin`` spacings.

    Args:
        focus_m: (B, S) focus distances in metres.
        margin: widening on each side, in units of the mean diopter spacing between slices.

    Returns:
        (B, 2) ``(near_m, far_m)``; far is at most ``1 / MIN_DIOPTER`` metres.
    """
    _check_focus(focus_m)
    dio = 1.0 / focus_m
    lo, hi = dio.min(dim=1).values, dio.max(dim=1).values
    spacing = (hi - lo) / (focus_m.shape[1] - 1)
    d_min = (lo - margin * spacing).clamp_min(MIN_DIOPTER)
    d_max = hi + margin * spacing
    return torch.stack([1.0 / d_max, 1.0 / d_min], dim=1)


def _diopter_bounds(depth_range_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if depth_range_m.dim() != 2 or depth_range_m.shape[1] != 2:
        raise ValueError(f"depth_range_m must be (B, 2) (near, far), got {tuple(depth_range_m.shape)}")
    near, far = depth_range_m[:, 0], depth_range_m[:, 1]
    if not (near > 0).all() or not (far > near).all():
        raise ValueError("depth_range_m needs 0 < near < far")
    return 1.0 / far, 1.0 / near  # (d_min, d_max) diopters, each (B,)


def focus_to_u(focus_m: torch.Tensor, depth_range_m: torch.Tensor) -> torch.Tensor:
    """Normalised focus input: (B, S) metres -> (B, S) ``u = (1/F - D_min) / (D_max - D_min)``."""
    _check_focus(focus_m)
    d_min, d_max = _diopter_bounds(depth_range_m)
    return (1.0 / focus_m - d_min[:, None]) / (d_max - d_min)[:, None]


def t_to_depth(t: torch.Tensor, depth_range_m: torch.Tensor) -> torch.Tensor:
    """Network depth output -> metres. ``t`` (B, 1, H, W) in [0, 1] -> depth (B, 1, H, W) in [near, far]."""
    d_min, d_max = _diopter_bounds(depth_range_m)
    shape = (-1,) + (1,) * (t.dim() - 1)
    dio = d_min.reshape(shape) + t * (d_max - d_min).reshape(shape)
    return 1.0 / dio


def depth_to_t(depth_m: torch.Tensor, depth_range_m: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`t_to_depth` (not clamped: depths outside the range map outside [0, 1])."""
    d_min, d_max = _diopter_bounds(depth_range_m)
    shape = (-1,) + (1,) * (depth_m.dim() - 1)
    return (1.0 / depth_m - d_min.reshape(shape)) / (d_max - d_min).reshape(shape)


def paper_norm(depth_m: torch.Tensor, near_m: float, far_m: float) -> torch.Tensor:
    """The paper's "norm" post-processing, ``d / max(d) * (far - near) + near`` per image.

    Pins every map's maximum to ``far``; kept only to reproduce the paper. (B, 1, H, W) -> same.
    """
    peak = depth_m.flatten(1).max(dim=1).values.clamp_min(1e-12)
    return depth_m / peak.reshape(-1, 1, 1, 1) * (far_m - near_m) + near_m
