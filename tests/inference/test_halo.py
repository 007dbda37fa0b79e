"""Retracting a near surface's halo from a windowed depth estimate, guided by the AIF."""

from __future__ import annotations

import math

import pytest
import torch

from focalstack.inference.halo import halo_radius_px, retract_near_halos

FAR, NEAR = 4.0, 2.0
SPACING = 0.1  # diopters per slice: NEAR is 2.5 diopters = 25 slices nearer than FAR


def _scene(halo_px: int, size: int = 48, lo: int = 16, hi: int = 32):
    """A bright near square on a dark far wall; the depth's square is ``halo_px`` wider than the image's."""
    guide = torch.full((1, 3, size, size), 0.2)
    guide[..., lo:hi, lo:hi] = 0.8
    depth = torch.full((1, 1, size, size), FAR)
    depth[..., lo - halo_px : hi + halo_px, lo - halo_px : hi + halo_px] = NEAR
    truth = torch.full_like(depth, FAR)
    truth[..., lo:hi, lo:hi] = NEAR
    return depth, guide, truth


def _reference(depth, guide, radius, jump, step_cost, colour_cost):
    """Obviously correct: Dijkstra from every seed, over the 8-neighbour grid, one image at a time."""
    import heapq

    d, g = depth[0, 0].tolist(), guide[0]
    H, W = len(d), len(d[0])
    inverse = [[1.0 / v / SPACING for v in row] for row in d]
    suspect = [
        [
            any(
                inverse[y][x] - inverse[j][i] > jump
                for j in range(max(0, y - radius), min(H, y + radius + 1))
                for i in range(max(0, x - radius), min(W, x + radius + 1))
            )
            for x in range(W)
        ]
        for y in range(H)
    ]
    cost = [[0.0 if not suspect[y][x] else math.inf for x in range(W)] for y in range(H)]
    value = [row[:] for row in d]
    heap = [(0.0, y, x, d[y][x]) for y in range(H) for x in range(W) if not suspect[y][x]]
    heapq.heapify(heap)
    while heap:
        c, y, x, v = heapq.heappop(heap)
        if c > cost[y][x]:
            continue
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                j, i = y + dy, x + dx
                if (dy, dx) == (0, 0) or not (0 <= j < H and 0 <= i < W) or not suspect[j][i]:
                    continue
                step = step_cost * math.hypot(dy, dx) + colour_cost * float(
                    (g[:, j, i] - g[:, y, x]).abs().sum()
                )
                if c + step < cost[j][i]:
                    cost[j][i], value[j][i] = c + step, v
                    heapq.heappush(heap, (c + step, j, i, v))
    out = [
        [
            value[y][x] if suspect[y][x] and cost[y][x] <= radius and value[y][x] > d[y][x] else d[y][x]
            for x in range(W)
        ]
        for y in range(H)
    ]
    return torch.tensor(out, dtype=depth.dtype)[None, None]


def test_halo_over_a_flat_wall_is_retracted_to_the_image_edge():
    depth, guide, truth = _scene(halo_px=5)
    out = retract_near_halos(depth, guide, SPACING, radius_px=8)
    assert out.shape == depth.shape
    assert torch.equal(out, truth)


def test_a_thin_near_bar_with_its_own_outline_keeps_its_depth():
    guide = torch.full((1, 3, 40, 40), 0.2)
    guide[..., :, 18:21] = 0.7  # a 3-px bar, outlined in the image
    depth = torch.full((1, 1, 40, 40), FAR)
    depth[..., :, 18:21] = NEAR
    assert torch.equal(retract_near_halos(depth, guide, SPACING, radius_px=10), depth)


def test_without_an_image_edge_the_near_rim_within_the_radius_goes_far():
    """The documented limit: a depth edge the image does not show is taken for a halo."""
    depth, _, _ = _scene(halo_px=0)
    flat = torch.full((1, 3, 48, 48), 0.5)
    out = retract_near_halos(depth, flat, SPACING, radius_px=3)
    assert (out[..., 16:32, 16:32] == FAR).sum() > 0
    assert (out >= depth).all()


def test_only_moves_depth_farther_and_leaves_smooth_depth_alone():
    torch.manual_seed(0)
    depth = 2.0 + torch.rand(2, 1, 20, 24)
    guide = torch.rand(2, 3, 20, 24)
    out = retract_near_halos(depth, guide, SPACING, radius_px=4)
    assert (out >= depth).all()
    # every jump below the threshold: nothing is a suspect
    smooth = torch.linspace(3.0, 3.05, 24).expand(1, 1, 20, 24).contiguous()
    assert torch.equal(retract_near_halos(smooth, guide[:1], SPACING, radius_px=4), smooth)
    assert torch.equal(retract_near_halos(depth, guide, SPACING, radius_px=0), depth)


@pytest.mark.parametrize("seed", range(6))
def test_matches_a_dijkstra_reference(seed):
    g = torch.Generator().manual_seed(seed)
    H, W = (int(v) for v in torch.randint(6, 14, (2,), generator=g))
    levels = torch.tensor([1.5, 2.5, 5.0])
    depth = levels[torch.randint(0, 3, (1, 1, H, W), generator=g)]
    guide = torch.rand(1, 3, H, W, generator=g) * 0.05 + (depth < 2.0) * 0.5
    radius = int(torch.randint(1, 5, (1,), generator=g))
    out = retract_near_halos(depth, guide, SPACING, radius, step_cost=0.25, colour_cost=30.0)
    ref = _reference(depth, guide, radius, 1.0, 0.25, 30.0)
    assert torch.equal(out, ref)
    assert (out != depth).any() or seed > 2  # the first cases do move pixels (the test is not vacuous)


def test_device_and_dtype_follow_the_inputs():
    depth, guide, truth = _scene(halo_px=4)
    out = retract_near_halos(depth.double(), guide.double(), SPACING, radius_px=8)
    assert out.dtype == torch.float64 and torch.equal(out, truth.double())


@pytest.mark.parametrize(
    ("depth", "guide", "kwargs", "match"),
    [
        (torch.ones(1, 2, 8, 8), torch.rand(1, 3, 8, 8), {}, "depth_m"),
        (torch.ones(1, 1, 8, 8), torch.rand(1, 3, 8, 9), {}, "guide"),
        (torch.zeros(1, 1, 8, 8), torch.rand(1, 3, 8, 8), {}, "> 0"),
        (torch.full((1, 1, 8, 8), float("nan")), torch.rand(1, 3, 8, 8), {}, "finite"),
        (torch.ones(1, 1, 8, 8), torch.full((1, 3, 8, 8), float("nan")), {}, "guide"),
        (torch.ones(1, 1, 8, 8), torch.rand(1, 3, 8, 8), {"radius_px": -1}, "radius"),
        (torch.ones(1, 1, 8, 8), torch.rand(1, 3, 8, 8), {"spacing_diopter": 0.0}, "spacing"),
        (torch.ones(1, 1, 8, 8), torch.rand(1, 3, 8, 8), {"colour_cost": -1.0}, "colour_cost"),
    ],
)
def test_bad_input_raises(depth, guide, kwargs, match):
    args = {"spacing_diopter": SPACING, "radius_px": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        retract_near_halos(depth, guide, **args)


def test_halo_radius_from_the_optics():
    assert halo_radius_px(8.8, 2.0) == math.ceil(2 * 8.8 + 6.0)
    assert halo_radius_px(0.0, 0.0) == 0
    with pytest.raises(ValueError, match="sigma"):
        halo_radius_px(float("nan"), 2.0)
