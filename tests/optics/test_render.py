"""Tests of the defocus renderer against slow, obviously-correct loop implementations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import focalstack
import focalstack.optics._blocks as blocks
from focalstack.optics import render_stack
from focalstack.optics._rings import ring_sums, ring_sums_adjoint, window_rings
from focalstack.optics.render import MAX_AUTO_KERNEL_SIZE, auto_kernel_size

MODES = ("gather", "scatter")
PSFS = ("gaussian", "disc")
CASES = [(m, p) for m in MODES for p in PSFS]


# ---------------------------------------------------------------- slow references (explicit tap loops)


def _tap_weight(r2: int, sigma: torch.Tensor, psf: str) -> torch.Tensor:
    if psf == "gaussian":
        return torch.exp(-r2 / (2.0 * sigma * sigma))
    return (2.0 * sigma + 0.5 - math.sqrt(r2)).clamp(0.0, 1.0)


def _offsets(k: int) -> list[tuple[int, int]]:
    r = k // 2
    return [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]


def ref_gather(aif: torch.Tensor, sigma: torch.Tensor, k: int, psf: str) -> torch.Tensor:
    """out[p] = sum_o w(o; sigma(p)) I(p + o) / sum_o w(o; sigma(p)) over in-image taps."""
    r = k // 2
    _, _, h, w = aif.shape
    xp = F.pad(aif, (r, r, r, r))
    inside = F.pad(torch.ones_like(aif[:, :1]), (r, r, r, r))
    num, den = 0.0, 0.0
    for dy, dx in _offsets(k):
        wt = _tap_weight(dy * dy + dx * dx, sigma, psf)  # (B, S, H, W), kernel of the output pixel
        num = num + wt[:, :, None] * xp[:, None, :, r + dy : r + dy + h, r + dx : r + dx + w]
        den = den + wt * inside[:, :, r + dy : r + dy + h, r + dx : r + dx + w]
    return num / den[:, :, None]


def ref_scatter(aif: torch.Tensor, sigma: torch.Tensor, k: int, psf: str) -> torch.Tensor:
    """out[q] = sum_p k_p(q - p) I(p) / sum_p k_p(q - p); k_p normalised over its full window, delta for
    sigma(p) <= 0.5, taps leaving the image dropped."""
    r = k // 2
    _, _, h, w = aif.shape
    blurred = sigma > 0.5
    weights = {}
    for dy, dx in _offsets(k):
        r2 = dy * dy + dx * dx
        wt = _tap_weight(r2, sigma, psf)
        weights[dy, dx] = torch.where(blurred, wt, torch.full_like(wt, float(r2 == 0)))
    z = sum(weights.values())
    num, den = 0.0, 0.0
    for (dy, dx), wt in weights.items():
        a = wt / z  # kernel of the source pixel, sent to offset (dy, dx)
        pad = (r + dx, r - dx, r + dy, r - dy)
        num = num + F.pad(a[:, :, None] * aif[:, None], pad)
        den = den + F.pad(a, pad)
    return num[..., r : r + h, r : r + w] / den[:, :, None, r : r + h, r : r + w]


REFERENCES = {"gather": ref_gather, "scatter": ref_scatter}


def _sigma(b: int, s: int, h: int, w: int, lo: float = 0.0, hi: float = 3.0, **kw) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(b, s, h, w, **kw)


def _grads(out: torch.Tensor, inputs: tuple[torch.Tensor, ...], g: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(out, inputs, g)


# ---------------------------------------------------------------- fast path == reference


@pytest.mark.parametrize("mode,psf", CASES)
def test_matches_reference_outputs_and_gradients(mode: str, psf: str) -> None:
    gen = torch.Generator().manual_seed(1)
    for k in (1, 3, 5, 7, 11):
        for _ in range(3):
            b, s, c = (int(v) for v in torch.randint(1, 4, (3,), generator=gen))
            h, w = (int(v) for v in torch.randint(1, 15, (2,), generator=gen))
            aif = torch.rand(b, c, h, w, dtype=torch.float64, generator=gen).requires_grad_()
            sigma = (3.0 * torch.rand(b, s, h, w, dtype=torch.float64, generator=gen)).requires_grad_()
            out = render_stack(aif, sigma, kernel_size=k, mode=mode, psf=psf)
            ref = REFERENCES[mode](aif, sigma, k, psf)
            assert out.shape == (b, s, c, h, w)
            torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
            g = torch.randn(out.shape, dtype=torch.float64, generator=gen)
            for fast, slow in zip(_grads(out, (aif, sigma), g), _grads(ref, (aif, sigma), g)):
                torch.testing.assert_close(fast, slow, rtol=0, atol=1e-11)


@pytest.mark.parametrize("mode,psf", CASES)
def test_float32_matches_float64_reference(mode: str, psf: str) -> None:
    aif = torch.rand(2, 3, 12, 10, requires_grad=True)
    sigma = _sigma(2, 4, 12, 10, 0.0, 4.0).requires_grad_()
    out = render_stack(aif, sigma, kernel_size=7, mode=mode, psf=psf)
    assert out.dtype == torch.float32
    a64, s64 = aif.detach().double().requires_grad_(), sigma.detach().double().requires_grad_()
    ref = REFERENCES[mode](a64, s64, 7, psf)
    torch.testing.assert_close(out, ref.float(), rtol=0, atol=2e-6)
    g = torch.randn(out.shape)
    for fast, slow in zip(_grads(out, (aif, sigma), g), _grads(ref, (a64, s64), g.double())):
        torch.testing.assert_close(fast, slow.float(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode,psf", CASES)
def test_blocking_does_not_change_results(mode: str, psf: str, monkeypatch: pytest.MonkeyPatch) -> None:
    aif = torch.rand(3, 2, 23, 9, dtype=torch.float64, requires_grad=True)
    sigma = _sigma(3, 2, 23, 9, dtype=torch.float64).requires_grad_()
    g = torch.randn(3, 2, 2, 23, 9, dtype=torch.float64)
    ref = REFERENCES[mode](aif, sigma, 7, psf)
    ref_grads = _grads(ref, (aif, sigma), g)
    for budget in (1, 5000):  # row bands of 8 rows with halos; several images per block
        monkeypatch.setattr(blocks, "CPU_BLOCK_ELEMENTS", budget)
        out = render_stack(aif, sigma, kernel_size=7, mode=mode, psf=psf)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
        for fast, slow in zip(_grads(out, (aif, sigma), g), ref_grads):
            torch.testing.assert_close(fast, slow, rtol=0, atol=1e-11)


@pytest.mark.parametrize("mode,psf", CASES)
def test_gradcheck(mode: str, psf: str) -> None:
    aif = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    # away from the disc's edge kinks is not controllable, but a random sigma hits one with ~0 probability;
    # keep scatter sigmas off its 0.5 px delta threshold.
    sigma = torch.cat([_sigma(1, 1, 5, 6, 0.6, 2.5), _sigma(1, 1, 5, 6, 0.1, 0.4)], 1).double()
    sigma.requires_grad_()
    fn = lambda a, s: render_stack(a, s, kernel_size=5, mode=mode, psf=psf)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (aif, sigma), eps=1e-6, atol=1e-6)


# ---------------------------------------------------------------- invariants


@pytest.mark.parametrize("mode,psf", CASES)
def test_constant_image_renders_to_itself(mode: str, psf: str) -> None:
    aif = torch.full((2, 3, 11, 13), 0.37, dtype=torch.float64)
    aif[:, 1] = 0.9
    sigma = _sigma(2, 3, 11, 13, 0.0, 6.0, dtype=torch.float64)
    out = render_stack(aif, sigma, kernel_size=9, mode=mode, psf=psf)
    torch.testing.assert_close(out, aif[:, None].expand_as(out), rtol=0, atol=1e-13)


@pytest.mark.parametrize("mode,psf", CASES)
@pytest.mark.parametrize("tiny", [0.0, 1e-30, 1e-3])
def test_zero_sigma_is_identity_with_finite_gradients(mode: str, psf: str, tiny: float) -> None:
    aif = torch.rand(2, 3, 8, 9, requires_grad=True)
    sigma = torch.full((2, 4, 8, 9), tiny, requires_grad=True)
    out = render_stack(aif, sigma, mode=mode, psf=psf)
    torch.testing.assert_close(out, aif[:, None].expand_as(out).detach(), rtol=0, atol=1e-6)
    ga, gs = torch.autograd.grad(out, (aif, sigma), torch.randn(out.shape))
    assert torch.isfinite(ga).all() and torch.isfinite(gs).all()
    torch.testing.assert_close(gs, torch.zeros_like(gs), rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode,psf", CASES)
def test_huge_sigma_is_finite_box_blur(mode: str, psf: str) -> None:
    aif = torch.rand(1, 2, 9, 9, requires_grad=True)
    sigma = torch.tensor([1e6, 1e30, 3e38]).view(1, 3, 1, 1).expand(1, 3, 9, 9).clone().requires_grad_()
    out = render_stack(aif, sigma, kernel_size=3, mode=mode, psf=psf)
    box = F.avg_pool2d(aif, 3, stride=1, padding=1, count_include_pad=False)
    torch.testing.assert_close(out, box[:, None].expand_as(out).detach(), rtol=0, atol=1e-5)
    ga, gs = torch.autograd.grad(out, (aif, sigma), torch.randn(out.shape))
    assert torch.isfinite(ga).all() and torch.isfinite(gs).all()


@pytest.mark.parametrize("mode,psf", CASES)
def test_output_within_input_range(mode: str, psf: str) -> None:
    aif = torch.rand(2, 3, 16, 16) * 0.5 + 0.2
    out = render_stack(aif, _sigma(2, 5, 16, 16, 0.0, 5.0), kernel_size=11, mode=mode, psf=psf)
    assert out.min() >= aif.min() - 1e-6 and out.max() <= aif.max() + 1e-6


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("psf", PSFS)
@pytest.mark.parametrize("s", [0.8, 1.3, 2.0])
def test_psf_of_a_delta_is_the_normalised_kernel(mode: str, psf: str, s: float) -> None:
    k, size = 9, 19  # the whole window stays r px away from the border (no renormalisation)
    aif = torch.zeros(1, 1, size, size, dtype=torch.float64)
    aif[..., size // 2, size // 2] = 1.0
    sigma = torch.full((1, 1, size, size), s, dtype=torch.float64)
    out = render_stack(aif, sigma, kernel_size=k, mode=mode, psf=psf)[0, 0, 0]
    r = k // 2
    d = torch.arange(-r, r + 1, dtype=torch.float64)
    r2 = d[:, None] ** 2 + d[None, :] ** 2
    if psf == "gaussian":
        kernel = torch.exp(-r2 / (2 * s * s))
    else:
        kernel = (2 * s + 0.5 - r2.sqrt()).clamp(0, 1)
    c = size // 2
    torch.testing.assert_close(out[c - r : c + r + 1, c - r : c + r + 1], kernel / kernel.sum())
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("psf", PSFS)
def test_gather_equals_scatter_for_uniform_blur(psf: str) -> None:
    aif = torch.rand(2, 3, 14, 12, dtype=torch.float64)
    sigma = torch.rand(2, 3, 1, 1, dtype=torch.float64).add(0.6).expand(2, 3, 14, 12)
    a = render_stack(aif, sigma, mode="gather", psf=psf)
    b = render_stack(aif, sigma, mode="scatter", psf=psf)
    torch.testing.assert_close(a[..., 3:-3, 3:-3], b[..., 3:-3, 3:-3])  # equal away from the border


def test_scatter_keeps_in_focus_sources_sharp_and_gradient_free() -> None:
    aif = torch.rand(1, 1, 9, 9, dtype=torch.float64, requires_grad=True)
    sigma = torch.full((1, 1, 9, 9), 0.5, dtype=torch.float64, requires_grad=True)  # CoC radius 1 px
    out = render_stack(aif, sigma, mode="scatter")
    torch.testing.assert_close(out[0, 0], aif[0].detach())
    (gs,) = torch.autograd.grad(out.sum(), sigma)
    assert gs.abs().max() == 0


def test_slices_are_independent() -> None:
    aif = torch.rand(2, 3, 10, 10)
    sigma = _sigma(2, 4, 10, 10)
    full = render_stack(aif, sigma)
    for i in range(4):
        torch.testing.assert_close(render_stack(aif, sigma[:, i : i + 1])[:, 0], full[:, i])


# ---------------------------------------------------------------- ring decomposition


@pytest.mark.parametrize("k,n_rings", [(1, 1), (3, 3), (7, 10), (11, 20), (31, 120)])
def test_window_rings_partition_the_window(k: int, n_rings: int) -> None:
    rings = window_rings(k)
    assert len(rings) == n_rings and sum(rings.counts) == k * k
    assert list(rings.r2) == sorted(set(rings.r2)) and rings.r2[0] == 0
    taps = _offsets(k)
    for r2, count in zip(rings.r2, rings.counts):
        assert count == sum(dy * dy + dx * dx == r2 for dy, dx in taps)


def test_ring_sums_match_masked_convolution_and_adjoint_is_the_transpose() -> None:
    rings, r = window_rings(7), 3
    x = torch.rand(2, 3, 9, 11, dtype=torch.float64)
    sums = ring_sums(F.pad(x, (r, r, r, r)), rings)
    d = torch.arange(-r, r + 1, dtype=torch.float64)
    r2 = d[:, None] ** 2 + d[None, :] ** 2
    for k, e in enumerate(rings.r2):
        mask = (r2 == e).to(x.dtype).expand(3, 1, 7, 7)
        torch.testing.assert_close(sums[k], F.conv2d(x, mask, padding=r, groups=3))
    g = torch.rand_like(sums)
    back = ring_sums_adjoint(g, rings, out=torch.zeros(2, 3, 9 + 2 * r, 11 + 2 * r, dtype=torch.float64))
    torch.testing.assert_close((sums * g).sum(), (x * back[..., r:-r, r:-r]).sum())


# ---------------------------------------------------------------- window size


def test_auto_kernel_size() -> None:
    assert auto_kernel_size(0.0) == 1
    assert auto_kernel_size(1.0) == 7
    assert auto_kernel_size(1.01) == 9
    assert auto_kernel_size(1.0, "disc") == 5  # radius 2 px + 0.5 px edge
    assert auto_kernel_size(1e4) == MAX_AUTO_KERNEL_SIZE
    with pytest.raises(ValueError, match="psf"):
        auto_kernel_size(1.0, "box")
    with pytest.raises(ValueError, match="max_sigma"):
        auto_kernel_size(float("nan"))


@pytest.mark.parametrize("psf", PSFS)
def test_kernel_size_none_does_not_saturate(psf: str) -> None:
    aif = torch.rand(1, 1, 24, 24, dtype=torch.float64)
    sigma = torch.full((1, 1, 24, 24), 2.5, dtype=torch.float64, requires_grad=True)
    auto = render_stack(aif, sigma, kernel_size=None, psf=psf)
    k = auto_kernel_size(2.5, psf)
    torch.testing.assert_close(auto, ref_gather(aif, sigma, k, psf))
    # the 7 x 7 window clips this blur: its sigma-gradient collapses, the auto window's does not
    (g_auto,) = torch.autograd.grad(auto.std(), sigma)
    (g_clip,) = torch.autograd.grad(render_stack(aif, sigma, kernel_size=7, psf=psf).std(), sigma)
    assert g_auto.sum().abs() > 1.5 * g_clip.sum().abs()


# ---------------------------------------------------------------- dtypes, devices, API


def test_float16_computes_in_float32() -> None:
    aif = torch.rand(1, 3, 8, 8)
    sigma = _sigma(1, 2, 8, 8)
    out = render_stack(aif.half(), sigma.half())
    assert out.dtype == torch.float16
    torch.testing.assert_close(
        out.float(), render_stack(aif.half().float(), sigma.half().float()), atol=1e-3, rtol=0
    )


def test_exported_from_package() -> None:
    assert focalstack.render_stack is render_stack


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("mode,psf", CASES)
def test_cuda_matches_cpu(mode: str, psf: str) -> None:
    aif = torch.rand(2, 3, 40, 33, requires_grad=True)
    sigma = _sigma(2, 5, 40, 33, 0.0, 3.0).requires_grad_()
    g = torch.randn(2, 5, 3, 40, 33)
    out = render_stack(aif, sigma, mode=mode, psf=psf)
    grads = _grads(out, (aif, sigma), g)
    aif_c, sigma_c = aif.detach().cuda().requires_grad_(), sigma.detach().cuda().requires_grad_()
    out_c = render_stack(aif_c, sigma_c, mode=mode, psf=psf)
    assert out_c.device.type == "cuda"
    torch.testing.assert_close(out_c.cpu(), out, atol=1e-5, rtol=0)
    for gc, gcpu in zip(_grads(out_c, (aif_c, sigma_c), g.cuda()), grads):
        torch.testing.assert_close(gc.cpu(), gcpu, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- validation


def _ok() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(2, 3, 8, 8), torch.rand(2, 4, 8, 8)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda a, s: (a[0], s), r"aif must be \(B, C, H, W\)"),
        (lambda a, s: (a, s[0]), r"sigma must be \(B, S, H, W\)"),
        (lambda a, s: (a, s[:1]), "agree in B, H and W"),
        (lambda a, s: (a, s[..., :7]), "agree in B, H and W"),
        (lambda a, s: (a, s[:, :0]), "dimension must be >= 1"),
        (lambda a, s: (a, s.double()), "share a dtype"),
        (lambda a, s: ((a * 255).to(torch.uint8), s), "floating point"),
        (lambda a, s: (a, s.clone().index_fill_(3, torch.tensor([2]), float("nan"))), "finite"),
        (lambda a, s: (a, s.clone().index_fill_(3, torch.tensor([2]), float("inf"))), "finite"),
        (lambda a, s: (a, s - 0.5), ">= 0"),
        (lambda a, s: (a.numpy(), s), "torch tensors"),
    ],
)
def test_bad_inputs_raise(make, match: str) -> None:
    aif, sigma = make(*_ok())
    with pytest.raises(ValueError, match=match):
        render_stack(aif, sigma)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"kernel_size": 6}, "odd"),
        ({"kernel_size": 0}, "positive odd"),
        ({"kernel_size": -3}, "positive odd"),
        ({"kernel_size": 7.0}, "positive odd"),
        ({"kernel_size": True}, "positive odd"),
        ({"mode": "splat"}, "mode"),
        ({"psf": "box"}, "psf"),
    ],
)
def test_bad_options_raise(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        render_stack(*_ok(), **kw)
