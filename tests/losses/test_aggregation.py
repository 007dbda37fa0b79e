"""Semi-global aggregation: the fast scan against a per-pixel reference; fills flat regions; edges."""

from __future__ import annotations

import pytest
import torch

from focalstack.losses import semi_global_aggregation


def _reference_path(cost: torch.Tensor, guide: torch.Tensor, p1: float, p2: float, edge: float):
    """Left-to-right SGM path costs, written per pixel and hypothesis straight from the recurrence."""
    B, N, H, W = cost.shape
    out = cost.clone()
    for b in range(B):
        for y in range(H):
            for x in range(1, W):
                prev = out[b, :, y, x - 1]
                low = prev.min()
                jump = max(p1, p2 / (1.0 + abs(float(guide[b, y, x] - guide[b, y, x - 1])) / edge))
                for j in range(N):
                    options = [prev[j], low + jump]
                    options += [prev[j - 1] + p1] if j > 0 else []
                    options += [prev[j + 1] + p1] if j < N - 1 else []
                    out[b, j, y, x] = cost[b, j, y, x] + min(options) - low
    return out


def _reference(cost, guide, p1, p2, edge):
    total = torch.zeros_like(cost)
    for transpose in (False, True):
        c = cost.transpose(-1, -2) if transpose else cost
        g = guide.transpose(-1, -2) if transpose else guide
        for flip in (False, True):
            path = (
                _reference_path(c.flip(-1), g.flip(-1), p1, p2, edge).flip(-1)
                if flip
                else _reference_path(c, g, p1, p2, edge)
            )
            total += path.transpose(-1, -2) if transpose else path
    return total


@pytest.mark.parametrize("seed", range(6))
def test_matches_the_per_pixel_reference(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    B, N, H, W = (int(v) for v in torch.randint(1, 6, (4,), generator=g))
    N, H, W = N + 1, H + 1, W + 1  # at least 2 hypotheses and 2 pixels per path
    cost = torch.rand(B, N, H, W, generator=g, dtype=torch.float64)
    guide = torch.rand(B, H, W, generator=g, dtype=torch.float64)
    p1 = float(torch.rand((), generator=g)) * 0.5
    p2 = p1 + float(torch.rand((), generator=g))
    fast = semi_global_aggregation(cost, guide, p1, p2, edge=0.1)
    assert fast.shape == cost.shape
    torch.testing.assert_close(fast, _reference(cost, guide, p1, p2, 0.1))


def test_zero_penalties_leave_four_copies_of_the_cost() -> None:
    cost = torch.rand(2, 5, 7, 9)
    torch.testing.assert_close(semi_global_aggregation(cost, torch.rand(2, 7, 9), 0.0, 0.0), 4 * cost)


def test_flat_pixels_take_the_depth_of_their_textured_neighbours() -> None:
    """Only the first and last column say anything (minimum at hypothesis 3); the rest is flat."""
    cost = torch.zeros(1, 8, 6, 20)
    cost[..., 0] = cost[..., -1] = 1.0
    cost[:, 3, :, 0] = cost[:, 3, :, -1] = 0.0
    out = semi_global_aggregation(cost, torch.zeros(1, 6, 20), 0.05, 0.5)
    assert bool((out.argmin(dim=1) == 3).all())


def test_depth_edges_follow_guide_edges() -> None:
    """Two textured ends disagree (hypotheses 1 and 6); the flat middle splits where the guide steps."""
    cost = torch.zeros(1, 8, 4, 30)
    cost[..., :3] = cost[..., -3:] = 1.0
    cost[:, 1, :, :3] = cost[:, 6, :, -3:] = 0.0
    guide = torch.zeros(1, 4, 30)
    guide[..., 20:] = 1.0
    best = semi_global_aggregation(cost, guide, 0.05, 2.0).argmin(dim=1)[0, 0]
    assert bool((best[:20] == 1).all()) and bool((best[20:] == 6).all())


@pytest.mark.parametrize(
    ("cost", "guide", "p1", "p2", "match"),
    [
        (torch.rand(5, 4, 4), torch.rand(1, 4, 4), 0.1, 1.0, "cost"),
        (torch.rand(1, 1, 4, 4), torch.rand(1, 4, 4), 0.1, 1.0, "cost"),
        (torch.rand(1, 3, 4, 4), torch.rand(1, 4, 5), 0.1, 1.0, "guide"),
        (torch.rand(1, 3, 4, 4), torch.rand(1, 4, 4), 1.0, 0.1, "p1"),
        (torch.rand(1, 3, 4, 4), torch.rand(1, 4, 4), -0.1, 0.1, "p1"),
    ],
)
def test_rejects_bad_input(cost, guide, p1, p2, match) -> None:
    with pytest.raises(ValueError, match=match):
        semi_global_aggregation(cost, guide, p1, p2)
    with pytest.raises(ValueError, match="edge"):
        semi_global_aggregation(torch.rand(1, 3, 4, 4), torch.rand(1, 4, 4), 0.1, 1.0, edge=0.0)
