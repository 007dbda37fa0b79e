"""Undo the near-surface halo of a windowed depth estimate, guided by the all-in-focus image.

A depth sweep scores each pixel over a window, and in the slices focused behind a near surface that
surface's blur covers the farther one beside it. Both push the near depth outwards over the farther
surface, as far as the near surface's blur reaches (edge fattening). The true silhouette of the near
surface is an edge of the all-in-focus image; the halo's outer rim lies on the farther surface,
where the image has no such edge. :func:`retract_near_halos` hands each pixel that lies within that
reach of a clearly farther pixel the farther depth, when an image path joins it to such a pixel
without crossing an image edge, and leaves it unchanged otherwise, so thin near structures with
their own outline keep their depth.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["halo_radius_px", "retract_near_halos"]

#: Geodesic cost of one pixel step (times its length) and of colour change (per unit of summed absolute
#: sRGB difference): a path across a strong image edge (0.3) costs as much as 360 flat pixels.
STEP_COST = 0.25
COLOUR_COST = 300.0
#: A pixel is a halo suspect when some pixel within the radius is farther by more than this, in slices.
JUMP_SLICES = 1.0

_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def halo_radius_px(sigma_max_px: float, window_sigma_px: float) -> int:
    """How far (pixels) a near surface's depth can spread over a farther one in a windowed sweep.

    The largest blur disc radius (twice the PSF's std, as the renderers draw it) plus the reach of the
    sweep's Gaussian error window (three stds).

    Args:
        sigma_max_px: the largest PSF std over the working range and the slices, pixels.
        window_sigma_px: std of the sweep's error window, pixels.

    Returns:
        The radius in pixels, rounded up.
    """
    if not (math.isfinite(sigma_max_px) and sigma_max_px >= 0 and window_sigma_px >= 0):
        raise ValueError(f"need finite sigmas >= 0, got {sigma_max_px}, {window_sigma_px}")
    return math.ceil(2.0 * sigma_max_px + 3.0 * window_sigma_px)


def retract_near_halos(
    depth_m: torch.Tensor,
    guide: torch.Tensor,
    spacing_diopter: float,
    radius_px: int,
    *,
    jump_slices: float = JUMP_SLICES,
    step_cost: float = STEP_COST,
    colour_cost: float = COLOUR_COST,
) -> torch.Tensor:
    """Give halo pixels of a near surface the depth of the farther surface they lie on.

    A pixel is a suspect when a pixel within ``radius_px`` (a square neighbourhood) is farther by more
    than ``jump_slices`` focus spacings. Every other pixel is a seed. Each suspect takes the depth of
    the seed nearest along image paths (cost per step: ``step_cost`` times its length plus
    ``colour_cost`` times the summed absolute colour change), if that path costs at most
    ``radius_px`` and the seed is farther; otherwise it keeps its depth. Not differentiable: it
    prepares a starting depth.

    Args:
        depth_m: (B, 1, H, W) depth in metres, > 0.
        guide: (B, C, H, W) the all-in-focus image, sRGB in [0, 1].
        spacing_diopter: the focus spacing, 1/m (> 0): depth jumps are measured in units of it.
        radius_px: how far a halo can reach, pixels (>= 0; 0 changes nothing), e.g.
            :func:`halo_radius_px`.
        jump_slices: a farther pixel within the radius makes a suspect when farther by more than this.
        step_cost, colour_cost: the path cost's weights (>= 0).

    Returns:
        (B, 1, H, W) depth in metres: equal to ``depth_m`` or farther, pixel by pixel.

    Raises:
        ValueError: mismatched shapes, non-finite or non-positive depth, non-finite guide, or a
            negative radius, cost or jump, or a spacing <= 0.
    """
    _check(depth_m, guide, spacing_diopter, radius_px, jump_slices, step_cost, colour_cost)
    if radius_px == 0:
        return depth_m.clone()
    inverse = 1.0 / depth_m / spacing_diopter  # slices; larger is nearer
    farthest = -F.max_pool2d(-inverse, 2 * radius_px + 1, stride=1, padding=radius_px)
    suspects = inverse - farthest > jump_slices
    value, cost = _geodesic_fill(depth_m, guide, suspects, step_cost, colour_cost, 4 * radius_px)
    take = suspects & (cost <= radius_px) & (value > depth_m)
    return torch.where(take, value, depth_m)


def _geodesic_fill(
    value: torch.Tensor,
    guide: torch.Tensor,
    unknown: torch.Tensor,
    step_cost: float,
    colour_cost: float,
    iters: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each ``unknown`` pixel's value copied from its geodesically nearest known pixel, and that cost.

    Shortest paths over the 8-neighbour grid by repeated relaxation (at most ``iters`` rounds; a path
    longer than that many steps is not found).
    """
    H, W = value.shape[-2:]
    cost = torch.where(unknown, torch.full_like(value, math.inf), torch.zeros_like(value))
    padded_guide = F.pad(guide, (1, 1, 1, 1), mode="replicate")
    steps = []
    for dy, dx in _NEIGHBOURS:
        neighbour = padded_guide[..., 1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]
        change = (neighbour - guide).abs().sum(dim=1, keepdim=True)
        steps.append(step_cost * math.hypot(dy, dx) + colour_cost * change)
    for _ in range(iters):
        c_pad = F.pad(cost, (1, 1, 1, 1), value=math.inf)
        v_pad = F.pad(value, (1, 1, 1, 1), mode="replicate")
        best, best_value = cost, value
        for (dy, dx), step in zip(_NEIGHBOURS, steps):
            through = c_pad[..., 1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W] + step
            better = unknown & (through < best)
            best = torch.where(better, through, best)
            best_value = torch.where(better, v_pad[..., 1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W], best_value)
        if torch.equal(best, cost):
            break
        cost, value = best, best_value
    return value, cost


def _check(
    depth_m: torch.Tensor,
    guide: torch.Tensor,
    spacing_diopter: float,
    radius_px: int,
    jump_slices: float,
    step_cost: float,
    colour_cost: float,
) -> None:
    if depth_m.dim() != 4 or depth_m.shape[1] != 1:
        raise ValueError(f"depth_m must be (B, 1, H, W), got {tuple(depth_m.shape)}")
    if guide.dim() != 4 or guide.shape[0] != depth_m.shape[0] or guide.shape[-2:] != depth_m.shape[-2:]:
        raise ValueError(
            f"guide must be (B, C, H, W) with depth_m's B, H, W {tuple(depth_m.shape)}, "
            f"got {tuple(guide.shape)}"
        )
    if not bool(torch.isfinite(depth_m).all()) or bool((depth_m <= 0).any()):
        raise ValueError("depth_m must be finite and > 0 everywhere")
    if not bool(torch.isfinite(guide).all()):
        raise ValueError("guide must be finite (no NaN or inf)")
    if not spacing_diopter > 0:
        raise ValueError(f"spacing_diopter must be > 0, got {spacing_diopter}")
    if radius_px < 0 or int(radius_px) != radius_px:
        raise ValueError(f"radius_px must be an integer >= 0, got {radius_px}")
    if jump_slices < 0 or step_cost < 0 or colour_cost < 0:
        got = f"{jump_slices}, {step_cost}, {colour_cost}"
        raise ValueError(f"jump_slices, step_cost and colour_cost must be >= 0, got {got}")
