from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from focalstack.eval.metrics import (
    aif_metrics,
    depth_metrics,
    hessian_frobenius,
    mean_diopter_spacing,
    mean_gradient,
    spatial_frequency,
)


def _depth(h: int = 16, w: int = 20) -> torch.Tensor:
    return 0.5 + 3.0 * torch.rand(2, h, w, dtype=torch.float64)


def test_hand_computed_values() -> None:
    pred = torch.tensor([[1.0, 2.0]])
    gt = torch.tensor([[1.0, 1.0]])
    m = depth_metrics(pred, gt, focus_m=[1.0, 0.5])
    assert m["absrel"] == pytest.approx(0.5)
    assert m["sqrel"] == pytest.approx(0.5)
    assert m["rmse"] == pytest.approx(math.sqrt(0.5))
    assert m["rmse_log"] == pytest.approx(math.log(2) / math.sqrt(2))
    assert m["rmse_log10"] == pytest.approx(math.log10(2) / math.sqrt(2))
    assert m["delta1"] == m["delta2"] == m["delta3"] == pytest.approx(0.5)
    assert m["error_diopters"] == pytest.approx(0.25)
    assert m["error_slices"] == pytest.approx(0.25)  # 1 diopter spacing
    # DDFF in disparity: p = [1, 0.5], g = [1, 1]
    assert m["ddff_mse"] == pytest.approx(0.125)
    assert m["ddff_absrel"] == pytest.approx(0.25)
    assert m["ddff_badpix"] == pytest.approx(50.0)
    assert m["ddff_delta1"] == pytest.approx(50.0)


def test_perfect_prediction() -> None:
    gt = _depth()
    m = depth_metrics(gt.clone(), gt, focus_m=[1.0, 2.0, 4.0])
    for k in (
        "absrel",
        "sqrel",
        "rmse",
        "rmse_log",
        "rmse_log10",
        "error_slices",
        "ddff_mse",
        "ddff_bump",
        "si_absrel",
        "ddff_badpix",
    ):
        assert m[k] == pytest.approx(0.0, abs=1e-12), k
    for k in ("delta1", "delta2", "delta3", "si_delta1", "delta1_allpix"):
        assert m[k] == pytest.approx(1.0), k
    assert m["ddff_delta1"] == pytest.approx(100.0)
    assert m["num_images"] == 2


def test_scale_invariance() -> None:
    gt = _depth()
    m = depth_metrics(2.0 * gt, gt)
    assert m["si_absrel"] == pytest.approx(0.0, abs=1e-12)
    assert m["si_rmse"] == pytest.approx(0.0, abs=1e-12)
    assert m["si_delta1"] == pytest.approx(1.0)
    assert m["absrel"] == pytest.approx(1.0)
    assert m["rmse_log"] == pytest.approx(math.log(2.0))
    assert m["delta1"] == 0.0


def test_invalid_pixels_ignored_and_allpix_variant() -> None:
    gt = _depth(8, 8)
    pred = gt.clone()
    gt[:, :4] = 0.0  # invalid half
    gt[0, 5, 5] = math.nan
    pred[:, :4] = 1e6  # garbage where invalid: must not matter
    m = depth_metrics(pred, gt)
    assert m["absrel"] == pytest.approx(0.0)
    assert m["delta1"] == pytest.approx(1.0)
    frac = (31 / 64 + 32 / 64) / 2
    assert m["delta1_allpix"] == pytest.approx(frac)
    assert m["valid_fraction"] == pytest.approx(frac)


def test_max_depth_cap() -> None:
    gt = torch.tensor([[1.0, 10.0]])
    pred = torch.tensor([[1.0, 20.0]])
    assert depth_metrics(pred, gt, max_depth_m=5.0)["absrel"] == 0.0
    assert depth_metrics(pred, gt)["absrel"] == pytest.approx(0.5)


def test_per_image_averaging() -> None:
    gt = torch.ones(2, 1, 2, 2)
    pred = torch.ones(2, 1, 2, 2)
    pred[0] = 2.0
    gt[1, 0, 0, 0] = 0.0  # image 1 has fewer valid pixels: still weighs one image
    assert depth_metrics(pred, gt)["absrel"] == pytest.approx(0.5)


def test_shapes_and_numpy_input() -> None:
    gt = _depth()
    a = depth_metrics(gt[0] * 1.1, gt[0])
    b = depth_metrics((gt[0] * 1.1).numpy()[None, None], gt[0].numpy())
    assert a["absrel"] == pytest.approx(0.1) and b["absrel"] == pytest.approx(0.1)


@pytest.mark.parametrize(
    "pred,gt,msg",
    [
        (torch.ones(3, 4), torch.ones(4, 3), "shape"),
        (torch.ones(2, 3, 4, 4), torch.ones(2, 3, 4, 4), r"\(B, 1, H, W\)"),
        (torch.ones(4, 4), torch.zeros(4, 4), "no valid pixel"),
        (torch.zeros(4, 4), torch.ones(4, 4), "finite and > 0"),
        (torch.full((4, 4), math.inf), torch.ones(4, 4), "finite and > 0"),
    ],
)
def test_bad_depth_input(pred: torch.Tensor, gt: torch.Tensor, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        depth_metrics(pred, gt)


def test_bad_focus_and_cap() -> None:
    with pytest.raises(ValueError, match="focus_m"):
        mean_diopter_spacing([1.0])
    with pytest.raises(ValueError, match="equal"):
        mean_diopter_spacing([2.0, 2.0])
    with pytest.raises(ValueError, match="max_depth_m"):
        depth_metrics(torch.ones(2, 2), torch.ones(2, 2), max_depth_m=0.0)


def test_mean_diopter_spacing() -> None:
    assert mean_diopter_spacing([1.0, 0.5, 0.25]) == pytest.approx(1.5)


def test_hessian_of_quadratic() -> None:
    y, x = torch.meshgrid(torch.arange(9.0), torch.arange(9.0), indexing="ij")
    f = (0.5 * 3.0 * x**2 + 2.0 * x * y + 0.5 * 1.0 * y**2).double()[None]
    h = hessian_frobenius(f)[0, 2:-2, 2:-2]
    assert torch.allclose(h, torch.full_like(h, math.sqrt(9 + 2 * 4 + 1)))


def test_bumpiness_clip_and_planar_offset() -> None:
    gt = _depth(12, 12)
    # A planar offset in disparity has zero Hessian -> zero bumpiness but non-zero MSE.
    y, x = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    pred = 1.0 / (1.0 / gt + 0.01 * x.double() + 0.02 * y.double())
    m = depth_metrics(pred, gt)
    assert m["ddff_bump"] == pytest.approx(0.0, abs=1e-9)
    assert m["ddff_mse"] > 0
    noisy = 1.0 / (1.0 / gt + torch.rand_like(gt))
    assert 0 < depth_metrics(noisy, gt)["ddff_bump"] <= 5.0 + 1e-9


def test_aif_metrics() -> None:
    gt = torch.rand(3, 32, 32)
    m = aif_metrics(gt, gt)
    assert m["aif_psnr"] == math.inf and m["aif_ssim"] == pytest.approx(1.0)
    noisy = (gt + 0.1 * torch.randn_like(gt)).clamp(0, 1)
    m2 = aif_metrics(noisy, gt)
    mse = float(((noisy.double() - gt.double()) ** 2).mean())
    assert m2["aif_psnr"] == pytest.approx(10 * math.log10(1 / mse))
    assert m2["aif_ssim"] < 0.99
    assert set(aif_metrics(gt)) == {"aif_mg", "aif_sf"}
    with pytest.raises(ValueError, match="shape"):
        aif_metrics(gt, gt[:, :8])
    with pytest.raises(ValueError, match="non-finite"):
        aif_metrics(torch.full((3, 4, 4), math.nan))


def test_mg_sf_reference() -> None:
    img = torch.rand(1, 1, 6, 7, dtype=torch.float64)
    a = img[0, 0].numpy()
    dx, dy = np.diff(a, axis=1), np.diff(a, axis=0)
    sf = math.sqrt((dx**2).mean() + (dy**2).mean())
    mg = np.sqrt((dx[:-1, :] ** 2 + dy[:, :-1] ** 2) / 2).mean()
    assert float(spatial_frequency(img)) == pytest.approx(sf)
    assert float(mean_gradient(img)) == pytest.approx(mg)
    # A constant image has no sharpness at all.
    flat = torch.full_like(img, 0.5)
    assert float(mean_gradient(flat)) == 0.0 and float(spatial_frequency(flat)) == 0.0
