"""Semi-global aggregation of a per-pixel cost volume (Hirschmüller's SGM), used by the depth sweep.

A window sums errors over a fixed neighbourhood: too small and textureless pixels have nothing to go
on, too large and a strongly textured object drags its surroundings to its own depth. SGM instead adds,
along straight paths in four directions, the cheapest way to reach each pixel's hypothesis from its
neighbour's: a step of one hypothesis costs ``p1`` (slanted surfaces), a larger jump ``p2`` (depth
edges), and ``p2`` shrinks where the guide image has an edge, so depth edges follow image edges.
Textureless pixels take the depth their textured path neighbours make cheapest; textured pixels keep
their own minimum wherever it is deeper than ``p2``.
"""

from __future__ import annotations

import torch


def _check(cost: torch.Tensor, guide: torch.Tensor, p1: float, p2: float) -> None:
    if cost.dim() != 4 or cost.shape[1] < 2:
        raise ValueError(f"cost must be (B, N, H, W) with N >= 2, got {tuple(cost.shape)}")
    B, _, H, W = cost.shape
    if tuple(guide.shape) != (B, H, W):
        raise ValueError(f"guide must be (B, H, W) = {(B, H, W)}, got {tuple(guide.shape)}")
    if not 0 <= p1 <= p2:
        raise ValueError(f"need 0 <= p1 <= p2, got p1={p1}, p2={p2}")


def _path(cost: torch.Tensor, guide: torch.Tensor, p1: float, p2: float, edge: float) -> torch.Tensor:
    """Path costs (B, N, H, W) of one left-to-right scan (each row is one path)."""
    B, N, H, W = cost.shape
    out = torch.empty_like(cost)
    prev = cost[..., 0]
    out[..., 0] = prev
    inf = prev.new_full((B, 1, H), float("inf"))
    for x in range(1, W):
        low = prev.amin(dim=1, keepdim=True)
        step = (guide[..., x] - guide[..., x - 1]).abs()[:, None]
        jump = (p2 / (1.0 + step / edge)).clamp_min(p1)
        neighbours = torch.minimum(torch.cat([inf, prev[:, :-1]], 1), torch.cat([prev[:, 1:], inf], 1))
        best = torch.minimum(torch.minimum(prev, neighbours + p1), low + jump)
        prev = cost[..., x] + best - low  # subtracting the minimum keeps the sums bounded
        out[..., x] = prev
    return out


def semi_global_aggregation(
    cost: torch.Tensor, guide: torch.Tensor, p1: float, p2: float, edge: float = 0.05
) -> torch.Tensor:
    """Sum of SGM path costs along the four axis directions (left, right, up, down).

    Args:
        cost: (B, N, H, W) cost of N ordered hypotheses per pixel (neighbouring indices are neighbouring
            depths), any non-negative units.
        guide: (B, H, W) guide image (e.g. grey AIF in [0, 1]) whose edges may carry depth edges.
        p1: penalty (cost units) for a change of one hypothesis between path neighbours.
        p2: penalty for a larger change where the guide is flat; divided by ``1 + |step| / edge`` across
            a guide step, never below ``p1``.
        edge: guide step (guide units) that halves ``p2``.

    Returns:
        (B, N, H, W) aggregated cost; its per-pixel minimum is the SGM estimate. With ``p1 = p2 = 0`` it
        is ``4 * cost``.

    Raises:
        ValueError: wrong shapes, or not ``0 <= p1 <= p2``, or ``edge <= 0``.
    """
    _check(cost, guide, p1, p2)
    if edge <= 0:
        raise ValueError(f"edge must be > 0, got {edge}")
    total = torch.zeros_like(cost)
    for transpose in (False, True):
        c, g = (cost.transpose(-1, -2), guide.transpose(-1, -2)) if transpose else (cost, guide)
        for flip in (False, True):
            path = _path(c.flip(-1), g.flip(-1), p1, p2, edge).flip(-1) if flip else _path(c, g, p1, p2, edge)
            total += path.transpose(-1, -2) if transpose else path
    return total
