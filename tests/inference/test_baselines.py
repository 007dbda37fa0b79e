from __future__ import annotations

import numpy as np
import pytest
import torch

from focalstack.inference.baselines import (
    dff_depth,
    dff_predict,
    dff_slice_index,
    focus_measure,
    focus_peak,
    focus_stack_aif,
)
from focalstack.optics import ThinLens, depth_to_sigma_px, render_stack

CAM = ThinLens(0.05, 8.0, 20e-6)
FOCUS = torch.tensor([0.5, 0.6, 0.75, 1.0, 1.5], dtype=torch.float64)
SPACING = float((1 / FOCUS).max() - (1 / FOCUS).min()) / 4


def _texture(h: int = 64, w: int = 64) -> torch.Tensor:
    coarse = torch.nn.functional.interpolate(torch.rand(1, 3, h // 4, w // 4), size=(h, w), mode="bicubic")
    return (0.7 * coarse.clamp(0, 1) + 0.3 * torch.rand(1, 3, h, w))[0]


def _render(aif: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    sigma = depth_to_sigma_px(
        depth[None].float(), FOCUS[None].float(), CAM.focal_length_m, CAM.f_number, CAM.pixel_size_m
    )
    return render_stack(aif[None], sigma, kernel_size=15)[0]


def _slant(h: int = 64, w: int = 64) -> torch.Tensor:
    x = torch.arange(w, dtype=torch.float64).expand(h, w)
    return 1.0 / (1 / 0.5 - (1 / 0.5 - 1 / 1.5) * x / (w - 1))


def _step(h: int = 64, w: int = 64) -> torch.Tensor:
    x = torch.arange(w).expand(h, w)
    return torch.where(x < w // 2, 0.6, 1.2).double()


def _slice_error(depth: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    return (1 / depth.double() - 1 / gt).abs() / SPACING


def test_dff_recovers_slanted_plane() -> None:
    gt = _slant()
    stack = _render(_texture(), gt)
    depth = dff_depth(stack, focus_m=FOCUS)
    assert depth.shape == gt.shape and depth.dtype == stack.dtype
    assert float(_slice_error(depth, gt).mean()) < 0.2
    # Depth stays within the focus range.
    assert float(depth.min()) >= 0.5 - 1e-6 and float(depth.max()) <= 1.5 + 1e-6


def test_dff_recovers_step_away_from_the_edge() -> None:
    gt = _step()
    err = _slice_error(dff_depth(_render(_texture(), gt), focus_m=FOCUS), gt)
    # 1.2 m lies between the 1.0 m and 1.5 m slices: only sub-slice interpolation gets it right.
    assert float(err[:, :24].mean()) < 0.1 and float(err[:, 40:].mean()) < 0.1


def test_slice_index_matches_order() -> None:
    stack = _render(_texture(), _slant())
    idx = dff_slice_index(stack)
    assert idx.shape == (64, 64) and float(idx.min()) >= 0 and float(idx.max()) <= 4
    # Near on the left (slice 0 focused at 0.5 m), far on the right.
    assert float(idx[:, :8].mean()) < 0.7 and float(idx[:, -8:].mean()) > 3.3


def test_peak_exact_for_gaussian_measure_nonuniform_spacing() -> None:
    x = torch.tensor([2.0, 1.6, 1.0, 0.9, 0.3], dtype=torch.float64)  # decreasing, uneven
    true = torch.tensor([1.75, 1.2, 0.95, 0.5], dtype=torch.float64)
    fm = torch.exp(-((x[:, None] - true[None]) ** 2) / (2 * 0.4**2))[:, None, :]  # (S, 1, 4)
    assert torch.allclose(focus_peak(fm, x)[0], true, atol=1e-9)


def test_peak_matches_polyfit_reference() -> None:
    x = torch.tensor([0.0, 1.0, 2.5, 3.0, 4.5, 6.0], dtype=torch.float64)
    fm = torch.rand(6, 5, 7, dtype=torch.float64) + 0.01
    fast = focus_peak(fm, x).numpy()
    logs, xs = np.log(fm.numpy()), x.numpy()
    for r in range(5):
        for c in range(7):
            best = int(np.argmax(logs[:, r, c]))
            i = min(max(best, 1), len(xs) - 2)
            a, b, _ = np.polyfit(xs[i - 1 : i + 2], logs[i - 1 : i + 2, r, c], 2)
            ref = np.clip(-b / (2 * a), xs[i - 1], xs[i + 1]) if a < 0 else xs[best]
            assert fast[r, c] == pytest.approx(ref, abs=1e-9)


def test_fusion_beats_every_slice() -> None:
    aif = _texture()
    stack = _render(aif, _step())
    fused = focus_stack_aif(stack)
    assert fused.shape == aif.shape

    def psnr(a: torch.Tensor) -> float:
        return float(10 * torch.log10(1 / ((a - aif) ** 2).mean()))

    best_slice = max(psnr(s) for s in stack)
    assert psnr(fused) > best_slice + 3.0


def test_fusion_of_identical_slices_is_identity() -> None:
    img = _texture(40, 52)
    fused = focus_stack_aif(img[None].repeat(3, 1, 1, 1))
    assert torch.allclose(fused, img.clamp(0, 1), atol=1e-5)
    assert torch.allclose(focus_stack_aif(torch.stack([img, 1 - img]), levels=0), torch.full_like(img, 0.5))


def test_noise_aware_fusion_averages_noise_and_keeps_texture() -> None:
    """Flat noisy slices: picking the largest detail keeps the strongest noise, the noise-aware fusion
    averages it away (close to the std of the mean of S slices). Textured, noisy slices: it keeps the
    sharp texture as well as plain fusion does."""
    g = torch.Generator().manual_seed(3)
    S, std = 5, 0.02
    flat = (0.5 + std * torch.randn(S, 3, 64, 64, generator=g)).clamp(0, 1)
    plain, aware = focus_stack_aif(flat), focus_stack_aif(flat, noise_aware=True)
    inner = (slice(None), slice(8, -8), slice(8, -8))
    assert float(aware[inner].std()) < 0.6 * float(plain[inner].std())
    assert float(aware[inner].std()) < 1.5 * std / S**0.5
    aif = _texture()
    stack = (_render(aif, _step()) + std * torch.randn(S, 3, 64, 64, generator=g)).clamp(0, 1)

    def psnr(a: torch.Tensor) -> float:
        return float(10 * torch.log10(1 / ((a - aif) ** 2).mean()))

    assert psnr(focus_stack_aif(stack, noise_aware=True)) > psnr(focus_stack_aif(stack)) - 0.3
    assert torch.equal(focus_stack_aif(stack, noise_aware=True), focus_stack_aif(stack, noise_aware=True))


def test_noise_aware_fusion_of_clean_identical_slices_is_identity() -> None:
    img = _texture(40, 52)
    fused = focus_stack_aif(img[None].repeat(3, 1, 1, 1), noise_aware=True)
    assert torch.allclose(fused, img.clamp(0, 1), atol=1e-5)


def test_focus_measure_prefers_sharp() -> None:
    img = _texture()
    blurred = render_stack(img[None], torch.full((1, 1, 64, 64), 2.0), kernel_size=11)[0]
    fm = focus_measure(torch.cat([blurred, img[None]]))
    assert fm.shape == (2, 64, 64) and bool((fm[1] > fm[0]).float().mean() > 0.95)


def test_dff_predict_with_stack() -> None:
    from focalstack.data.stack import FocalStack

    stack = FocalStack(
        images=_render(_texture(), _slant()),
        focus_m=FOCUS,
        camera=CAM,
        depth_m=None,
        aif=None,
        name="slant",
        meta={},
    )
    depth, aif = dff_predict(stack)
    assert depth.shape == (64, 64) and aif.shape == (3, 64, 64)
    assert torch.equal(depth, dff_depth(stack))


def test_bad_input() -> None:
    img = torch.rand(3, 3, 16, 16)
    with pytest.raises(ValueError, match=r"\(S, C, H, W\)"):
        dff_slice_index(img[0])
    with pytest.raises(ValueError, match="needs focus distances"):
        dff_depth(img)
    with pytest.raises(ValueError, match="2 focus distances for 3 slices"):
        dff_depth(img, focus_m=torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="distinct"):
        dff_depth(img, focus_m=torch.tensor([1.0, 2.0, 2.0]))
    with pytest.raises(ValueError, match="> 0"):
        dff_depth(img, focus_m=torch.tensor([1.0, -2.0, 3.0]))
    with pytest.raises(ValueError, match="odd"):
        focus_measure(img, window=4)
    with pytest.raises(ValueError, match="levels"):
        focus_stack_aif(img, levels=6)
