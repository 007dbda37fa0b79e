"""Tests of the thin-lens camera model (the one place the circle of confusion is computed)."""

from __future__ import annotations

import math

import pytest
import torch

from focalstack.optics import (
    SIGMA_PER_COC_RADIUS,
    ThinLens,
    coc_diameter_m,
    coc_to_sigma_px,
    depth_to_sigma_px,
)

NYU = ThinLens(focal_length_m=0.05, f_number=8.0, pixel_size_m=12e-6)  # the paper's NYUv2 generator


def test_coc_hand_values() -> None:
    # A = 50 mm / 8 = 6.25 mm; CoC = A f |d - F| / (d (F - f)) = 6.25e-3 * 0.05 * 1 / (2 * 0.95)
    assert coc_diameter_m(2.0, 1.0, 0.05, 8.0) == pytest.approx(1.644736842105263e-4, rel=1e-12)
    # nearer than focus: |0.5 - 1| / 0.5 = 1 -> 6.25e-3 * 0.05 / 0.95
    assert coc_diameter_m(0.5, 1.0, 0.05, 8.0) == pytest.approx(3.289473684210526e-4, rel=1e-12)
    assert coc_diameter_m(1.0, 1.0, 0.05, 8.0) == 0.0
    # c = CoC / (2 p) px, sigma = c / 2
    assert NYU.coc_radius_px(2.0, 1.0) == pytest.approx(1.644736842105263e-4 / 24e-6, rel=1e-12)
    assert NYU.sigma_px(2.0, 1.0) == pytest.approx(1.644736842105263e-4 / 48e-6, rel=1e-12)
    assert SIGMA_PER_COC_RADIUS == 0.5
    assert coc_to_sigma_px(24e-6, 12e-6) == pytest.approx(0.5)


def test_coc_saturates_at_infinity_and_grows_towards_the_lens() -> None:
    d = torch.tensor([0.2, 0.5, 0.9, 1.0, 1.5, 10.0, 1e6], dtype=torch.float64)
    coc = coc_diameter_m(d, 1.0, 0.05, 8.0)
    limit = 0.05 / 8.0 * 0.05 / 0.95  # d -> inf: A f / (F - f)
    assert coc[-1] == pytest.approx(limit, rel=1e-5)
    assert (coc[:3].diff() < 0).all() and (coc[4:].diff() > 0).all() and coc[3] == 0


def test_float_inputs_return_float_and_tensors_broadcast() -> None:
    assert isinstance(coc_diameter_m(2.0, 1.0, 0.05, 8.0), float)
    depth = torch.rand(2, 1, 2, 3, dtype=torch.float64) + 0.5
    focus = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64).view(1, 3, 1, 1)
    out = coc_diameter_m(depth, focus, 0.05, 8.0)
    assert out.shape == (2, 3, 2, 3) and out.dtype == torch.float64
    for i, f in enumerate([1.0, 2.0, 3.0]):
        expected = [coc_diameter_m(float(v), f, 0.05, 8.0) for v in depth[:, 0].flatten()]
        torch.testing.assert_close(out[:, i].flatten(), torch.tensor(expected, dtype=torch.float64))
    # a float argument follows the dtype of the tensor ones
    assert coc_diameter_m(torch.tensor([2.0]), 1.0, 0.05, 8.0).dtype == torch.float32
    # per-sample camera tensors broadcast too
    f = torch.tensor([0.05, 0.025]).view(2, 1)
    torch.testing.assert_close(
        coc_diameter_m(torch.full((2, 3), 2.0), torch.ones(2, 3), f, 8.0)[1],
        torch.full((3,), coc_diameter_m(2.0, 1.0, 0.025, 8.0)),
    )


@pytest.mark.parametrize(
    "args,match",
    [
        ((0.0, 1.0, 0.05, 8.0), "depth_m must be > 0"),
        ((-1.0, 1.0, 0.05, 8.0), "depth_m must be > 0"),
        ((float("nan"), 1.0, 0.05, 8.0), "depth_m must be finite"),
        ((1.0, float("inf"), 0.05, 8.0), "focus_m must be finite"),
        ((1.0, 1.0, 0.0, 8.0), "focal_length_m must be > 0"),
        ((1.0, 1.0, 0.05, -2.0), "f_number must be > 0"),
        ((1.0, 0.05, 0.05, 8.0), "must exceed the focal length"),
        ((1.0, 0.04, 0.05, 8.0), "must exceed the focal length"),
    ],
)
def test_coc_validation(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        coc_diameter_m(*args)
    with pytest.raises(ValueError, match=match):
        coc_diameter_m(*(torch.tensor([a, 1.0]) if i == 0 else a for i, a in enumerate(args)))


def test_coc_gradcheck_wrt_depth_and_focus() -> None:
    depth = torch.tensor([0.4, 0.8, 1.7, 5.0], dtype=torch.float64, requires_grad=True)
    focus = torch.tensor([1.0, 1.2, 1.5, 2.5], dtype=torch.float64, requires_grad=True)  # d != F
    assert torch.autograd.gradcheck(lambda d, f: coc_diameter_m(d, f, 0.05, 8.0), (depth, focus))
    # analytic check: for d > F, d CoC / d d = A f F / (d^2 (F - f))
    (g,) = torch.autograd.grad(coc_diameter_m(depth, focus.detach(), 0.05, 8.0).sum(), depth)
    a, f = 0.05 / 8.0, 0.05
    expected = a * f * focus[2:].detach() / (depth[2:].detach() ** 2 * (focus[2:].detach() - f))
    torch.testing.assert_close(g[2:], expected)


def test_depth_to_sigma_px_shapes_and_values() -> None:
    depth = torch.rand(2, 1, 6, 7) * 3 + 0.5
    focus = torch.tensor([[1.0, 1.5, 2.5], [0.8, 1.0, 4.0]])
    sigma = depth_to_sigma_px(depth, focus, 0.05, 8.0, 12e-6)
    assert sigma.shape == (2, 3, 6, 7)
    torch.testing.assert_close(sigma[1, 2], NYU.sigma_px(depth[1, 0], 4.0))
    torch.testing.assert_close(depth_to_sigma_px(depth[:, 0], focus, 0.05, 8.0, 12e-6), sigma)
    # per-sample cameras: (B,) tensors
    per = depth_to_sigma_px(depth, focus, torch.tensor([0.05, 0.05]), torch.tensor([8.0, 4.0]), 12e-6)
    torch.testing.assert_close(per[0], sigma[0])
    torch.testing.assert_close(per[1], 2.0 * sigma[1])  # half the f-number: twice the aperture


@pytest.mark.parametrize(
    "depth,focus",
    [
        (torch.rand(2, 2, 4, 4) + 1, torch.ones(2, 3)),
        (torch.rand(2, 4, 4) + 1, torch.ones(3, 3)),
        (torch.rand(2, 4, 4) + 1, torch.ones(2)),
        (torch.rand(4, 4) + 1, torch.ones(1, 3)),
    ],
)
def test_depth_to_sigma_px_bad_shapes(depth: torch.Tensor, focus: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="depth"):
        depth_to_sigma_px(depth, focus, 0.05, 8.0, 12e-6)


def test_thin_lens_basics_and_validation() -> None:
    assert NYU.aperture_m == pytest.approx(0.00625)
    assert NYU.coc_diameter_m(2.0, 1.0) == coc_diameter_m(2.0, 1.0, 0.05, 8.0)
    half = NYU.scaled(0.5)
    assert half.pixel_size_m == pytest.approx(24e-6)
    assert half.sigma_px(2.0, 1.0) == pytest.approx(NYU.sigma_px(2.0, 1.0) / 2)
    for bad in (0.0, -1.0, float("nan"), float("inf"), "0.05", None):
        with pytest.raises(ValueError, match="focal_length_m"):
            ThinLens(bad, 8.0, 12e-6)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="resize factor"):
        NYU.scaled(0.0)
    with pytest.raises(ValueError, match="resize factor"):
        NYU.scaled(float("nan"))


@pytest.mark.parametrize("focus", [0.3, 1.0, 2.5, 6.0])
@pytest.mark.parametrize("c_max", [0.5, 1.0, 3.0])
def test_depth_of_field_round_trip(focus: float, c_max: float) -> None:
    near, far = NYU.depth_of_field_m(focus, c_max)
    assert near < focus < far
    assert NYU.coc_radius_px(near, focus) == pytest.approx(c_max, rel=1e-12)
    if far < math.inf:  # else focus is beyond the hyperfocal distance (checked below)
        assert NYU.coc_radius_px(far, focus) == pytest.approx(c_max, rel=1e-12)
    inside = torch.linspace(near, min(far, 1e3), 50, dtype=torch.float64)[1:-1]
    assert (NYU.coc_radius_px(inside, focus) < c_max).all()


def test_depth_of_field_beyond_hyperfocal_and_validation() -> None:
    # hyperfocal H = A f / (2 p c) + f: focusing there keeps everything up to infinity sharp
    hyper = NYU.aperture_m * NYU.focal_length_m / (2 * NYU.pixel_size_m * 1.0) + NYU.focal_length_m
    assert NYU.depth_of_field_m(hyper * 1.01)[1] == math.inf
    assert NYU.depth_of_field_m(hyper * 0.99)[1] < math.inf
    assert NYU.depth_of_field_m(2.0, 0.0) == (2.0, 2.0)
    for bad in (0.05, 0.01, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="focus distance"):
            NYU.depth_of_field_m(bad)
    with pytest.raises(ValueError, match="max_coc_radius_px"):
        NYU.depth_of_field_m(2.0, -1.0)


def test_dict_round_trip() -> None:
    d = NYU.to_dict()
    assert d == {"focal_length_m": 0.05, "f_number": 8.0, "pixel_size_m": 12e-6}
    assert ThinLens.from_dict(d) == NYU
    assert ThinLens.from_dict({**d, "extra": 1, "f_number": "8"}) == NYU  # numbers from JSON strings too
    with pytest.raises(ValueError, match=r"missing \['pixel_size_m'\]"):
        ThinLens.from_dict({"focal_length_m": 0.05, "f_number": 8.0, "pixel_size_m": None})
    with pytest.raises(ValueError, match="missing"):
        ThinLens.from_dict({})
