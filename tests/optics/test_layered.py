"""Tests of the occlusion-aware layered renderer against a slow, obviously-correct loop implementation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from focalstack.optics import layer_count, render_layered, render_stack
from focalstack.optics.layered import hidden_fill_layers

PSFS = ("disc", "gaussian")


# ---------------------------------------------------------------- slow reference (explicit loops)


def _psf(sigma: float, psf: str, half: int) -> torch.Tensor:
    """(2 half + 1)^2 normalised PSF, tap by tap (untruncated within ``half``)."""
    k = torch.zeros(2 * half + 1, 2 * half + 1, dtype=torch.float64)
    for dy in range(-half, half + 1):
        for dx in range(-half, half + 1):
            r = math.hypot(dy, dx)
            if psf == "disc":
                k[dy + half, dx + half] = min(max(2.0 * sigma + 0.5 - r, 0.0), 1.0)
            else:
                k[dy + half, dx + half] = math.exp(-(r * r) / (2.0 * max(sigma, 1e-3) ** 2))
    return k / k.sum()


def _window_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean of (..., H, W) ``x`` over (2 r + 1)^2 windows, shift by shift, coordinates clamped at borders."""
    H, W = x.shape[-2:]
    total = torch.zeros_like(x)
    for dy in range(-r, r + 1):
        rows = torch.arange(H).add(dy).clamp(0, H - 1)
        for dx in range(-r, r + 1):
            total = total + x[..., rows, :][..., torch.arange(W).add(dx).clamp(0, W - 1)]
    return total / (2 * r + 1) ** 2


def ref_fill(image, weights, layer: int, reach: int) -> torch.Tensor:
    """(C + 1, H, W) layer ``layer`` continued behind the pixels 2+ layers nearer, as documented."""
    L, C = weights.shape[0], image.shape[0]
    own = torch.cat([image * weights[layer], weights[layer][None]])
    if layer >= L - 2:
        return own  # nothing lies two layers nearer
    occluder = (1.0 - weights[: layer + 2].sum(dim=0)).clamp_min(0.0)
    presence = weights[max(layer - 1, 0) : layer + 2].sum(dim=0)
    mass = torch.cat([image * presence, presence[None]])
    wide, near = _window_mean(mass, reach), _window_mean(mass, 2)
    mixed = 0.01 * wide + near
    colour = mixed[:C] / mixed[C:].clamp_min(1e-6)
    opacity = (2.0 * wide[C]).clamp(max=1.0)
    return own + occluder * opacity * torch.cat([colour, torch.ones_like(colour[:1])])


def ref_layered(image, diopter, diopter_range, sigma, psf, fill_hidden=False):
    """Per pixel: weights of the two nearest layers; per layer and slice: mirror-padded convolution of its
    premultiplied colour and weight (continued behind nearer pixels with ``fill_hidden``); composite far
    to near with "over"; divide by the weight."""
    B, C, H, W = image.shape
    S, L = sigma.shape[1:]
    out = torch.zeros(B, S, C, H, W, dtype=image.dtype)
    for b in range(B):
        far, near = diopter_range[b].tolist()
        rows = []
        for y in range(H):
            for x in range(W):
                pos = ((diopter[b, 0, y, x] - far) / (near - far)).clamp(0.0, 1.0) * (L - 1)
                lo = min(int(math.floor(pos.item())), L - 2)
                column = [torch.zeros((), dtype=image.dtype)] * L
                column[lo], column[lo + 1] = 1.0 - (pos - lo), pos - lo
                rows.append(torch.stack(column))
        weights = torch.stack(rows, dim=1).view(L, H, W)
        for s in range(S):
            acc = torch.zeros(C + 1, H, W, dtype=image.dtype)
            for layer in range(L):
                rgba = torch.cat([image[b] * weights[layer], weights[layer][None]])
                if fill_hidden:
                    rgba = ref_fill(image[b], weights, layer, math.ceil(2.0 * sigma[b].max().item() + 0.5))
                half = math.ceil(6.0 * sigma[b, s].max().item()) + 1
                kernel = _psf(sigma[b, s, layer].item(), psf, half)
                padded = F.pad(rgba[None], (half,) * 4, mode="reflect")[0]
                blurred = torch.stack([F.conv2d(c[None, None], kernel[None, None])[0, 0] for c in padded])
                acc = blurred + (1.0 - blurred[C:]) * acc
            out[b, s] = acc[:C] / acc[C:].clamp_min(1e-4)
    return out


def _case(seed: int, B: int, C: int, H: int, W: int, S: int, L: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(B, C, H, W, generator=g, dtype=dtype)
    far = 0.1 + torch.rand(B, generator=g, dtype=dtype)
    near = far + 0.2 + torch.rand(B, generator=g, dtype=dtype)
    # blocky depth: occlusion edges between patches, plus a little slant
    blocks = torch.rand(B, 1, (H + 3) // 4, (W + 3) // 4, generator=g, dtype=dtype)
    t = F.interpolate(blocks, scale_factor=4, mode="nearest")[..., :H, :W]
    # inside (0, 1): at a layer exactly, the weights have a kink (either one-sided derivative is right)
    t = 0.02 + 0.96 * (t + 0.05 * torch.rand(B, 1, H, W, generator=g, dtype=dtype)).clamp(0, 1)
    diopter = far.view(B, 1, 1, 1) + (near - far).view(B, 1, 1, 1) * t
    sigma = 1.5 * torch.rand(B, S, L, generator=g, dtype=dtype)
    return image, diopter, torch.stack([far, near], dim=1), sigma


# ---------------------------------------------------------------- against the reference


@pytest.mark.parametrize("psf", PSFS)
@pytest.mark.parametrize("seed", range(3))
def test_matches_the_loop_reference_outputs_and_gradients(psf: str, seed: int) -> None:
    g = torch.Generator().manual_seed(100 + seed)
    B, S, L = (
        int(torch.randint(1, 3, (1,), generator=g)),
        int(torch.randint(1, 3, (1,), generator=g)),
        3 + seed,
    )
    H, W = (int(v) for v in torch.randint(12, 20, (2,), generator=g))
    image, diopter, rng, sigma = _case(seed, B, 3, H, W, S, L)
    for x in (image, diopter):
        x.requires_grad_(True)
    fast = render_layered(image, diopter, rng, sigma, psf)
    ref = ref_layered(image, diopter, rng, sigma, psf)
    tol = 1e-9 if psf == "disc" else 1e-6  # both cut the Gaussian at 6 sigma (differently)
    assert fast.shape == (B, S, 3, H, W)
    assert torch.allclose(fast, ref, atol=tol), (fast - ref).abs().max()
    weight = torch.randn_like(fast)
    grads = torch.autograd.grad((fast * weight).sum(), (image, diopter))
    refs = torch.autograd.grad((ref * weight).sum(), (image, diopter))
    for a, b in zip(grads, refs):
        assert torch.allclose(a, b, atol=100 * tol), (a - b).abs().max()


@pytest.mark.parametrize("psf", PSFS)
@pytest.mark.parametrize("seed", range(3))
def test_hidden_fill_matches_the_loop_reference_outputs_and_gradients(psf: str, seed: int) -> None:
    g = torch.Generator().manual_seed(200 + seed)
    B, S, L = int(torch.randint(1, 3, (1,), generator=g)), 2, 4 + seed
    H, W = (int(v) for v in torch.randint(12, 20, (2,), generator=g))
    image, diopter, rng, sigma = _case(10 + seed, B, 3, H, W, S, L)
    for x in (image, diopter):
        x.requires_grad_(True)
    fast = render_layered(image, diopter, rng, sigma, psf, fill_hidden=True)
    ref = ref_layered(image, diopter, rng, sigma, psf, fill_hidden=True)
    tol = 1e-9 if psf == "disc" else 1e-6
    assert torch.allclose(fast, ref, atol=tol), (fast - ref).abs().max()
    assert (fast - render_layered(image, diopter, rng, sigma, psf)).abs().max() > 1e-3  # the fill acts
    weight = torch.randn_like(fast)
    grads = torch.autograd.grad((fast * weight).sum(), (image, diopter))
    refs = torch.autograd.grad((ref * weight).sum(), (image, diopter))
    for a, b in zip(grads, refs):
        assert torch.allclose(a, b, atol=100 * tol), (a - b).abs().max()


def test_gradcheck_in_float64() -> None:
    image, diopter, rng, sigma = _case(7, 1, 2, 9, 10, 2, 4)
    for x in (image, diopter, sigma):
        x.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda i, d, s: render_layered(i, d, rng, s, "gaussian"), (image, diopter, sigma)
    )
    assert torch.autograd.gradcheck(
        lambda i, d: render_layered(i, d, rng, sigma.detach(), "disc"), (image, diopter)
    )
    assert torch.autograd.gradcheck(
        lambda i, d: render_layered(i, d, rng, sigma.detach(), "disc", fill_hidden=True), (image, diopter)
    )


# ---------------------------------------------------------------- invariants


@pytest.mark.parametrize("psf", PSFS)
def test_a_fronto_parallel_scene_is_a_uniform_blur(psf: str) -> None:
    image = torch.rand(1, 3, 40, 48, dtype=torch.float64)
    diopter = torch.full((1, 1, 40, 48), 0.7, dtype=torch.float64)  # exactly on layer 5 of 11
    sigma = torch.linspace(0.0, 3.0, 11, dtype=torch.float64).view(1, 1, 11).repeat(1, 2, 1)
    out = render_layered(image, diopter, torch.tensor([[0.2, 1.2]], dtype=torch.float64), sigma, psf)
    ref = render_stack(image, torch.full((1, 2, 40, 48), 1.5, dtype=torch.float64), kernel_size=None, psf=psf)
    inner = (slice(None),) * 3 + (
        slice(8, -8),
        slice(8, -8),
    )  # the per-pixel renderer renormalises at borders
    # the per-pixel renderer's automatic window cuts the Gaussian at 3 sigma
    assert torch.allclose(out[inner], ref[inner], atol=1e-12 if psf == "disc" else 3e-4)


def test_a_sharp_near_surface_is_not_covered_by_the_blur_behind_it() -> None:
    image = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    diopter = torch.full((1, 1, 32, 32), 0.5, dtype=torch.float64)
    diopter[..., :, 16:] = 2.0  # right half near
    rng = torch.tensor([[0.5, 2.0]], dtype=torch.float64)
    sigma = torch.tensor([[[3.0, 0.0]]], dtype=torch.float64)  # far layer blurred, near one in focus
    out = render_layered(image, diopter, rng, sigma, "disc")[0, 0]
    assert torch.allclose(out[:, :, 16:], image[0, :, :, 16:], atol=1e-12)
    # the per-pixel renderer blends the far blur across the edge into the near pixels instead
    blur = torch.where(diopter[0, 0] > 1.0, 0.0, 3.0).to(torch.float64)[None, None]
    gathered = render_stack(image, blur, kernel_size=None, psf="disc", mode="scatter")[0, 0]
    assert (gathered[:, :, 16:20] - image[0, :, :, 16:20]).abs().max() > 0.05


def _near_square_over_wall(near_sigma: float) -> tuple[torch.Tensor, ...]:
    """A uniform square (0.8) in front of a uniform wall (0.2), the wall in focus, the square blurred."""
    image = torch.full((1, 1, 40, 40), 0.2, dtype=torch.float64)
    diopter = torch.full((1, 1, 40, 40), 0.5, dtype=torch.float64)
    image[..., 12:28, 12:28], diopter[..., 12:28, 12:28] = 0.8, 2.0
    sigma = torch.zeros(1, 1, 6, dtype=torch.float64)
    sigma[..., -1] = near_sigma
    return image, diopter, torch.tensor([[0.5, 2.0]], dtype=torch.float64), sigma


def test_hidden_fill_shows_a_sharp_wall_through_a_blurred_near_edge() -> None:
    image, diopter, rng, sigma = _near_square_over_wall(2.0)
    # what a lens sees: the square's blurred coverage over a wall that continues behind it
    kernel = _psf(2.0, "disc", 5)[None, None]
    coverage = F.conv2d(F.pad((diopter > 1.0).double(), (5,) * 4), kernel)[0, 0]
    expected = 0.8 * coverage + 0.2 * (1.0 - coverage)
    filled = render_layered(image, diopter, rng, sigma, "disc", fill_hidden=True)[0, 0, 0]
    holed = render_layered(image, diopter, rng, sigma, "disc")[0, 0, 0]
    inside = (slice(13, 27), slice(12, 14))  # the square's pixels next to its left edge
    assert torch.allclose(holed[inside], torch.full_like(holed[inside], 0.8))  # divided out
    assert (filled[inside] - expected[inside]).abs().max() < 0.03
    assert (filled[inside] - expected[inside]).abs().max() < 0.2 * (
        holed[inside] - expected[inside]
    ).abs().max()
    outside = (slice(0, 40), slice(0, 8))  # the wall beyond the blur's reach: untouched
    assert torch.allclose(filled[outside], holed[outside], atol=1e-12)


def test_hidden_fill_renders_a_fronto_parallel_plane_as_a_uniform_blur() -> None:
    image = torch.rand(1, 3, 48, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    rng = torch.tensor([[0.2, 1.2]], dtype=torch.float64)
    sigma = torch.linspace(0.0, 2.5, 11, dtype=torch.float64).view(1, 1, 11)  # radius 0.5 px apart
    inner = (..., slice(10, -10), slice(10, -10))
    for position in (4.0, 4.3, 4.5):  # on layer 4, and between layers 4 and 5
        diopter = torch.full((1, 1, 48, 48), 0.2 + position / 10.0, dtype=torch.float64)
        blur = torch.full((1, 1, 48, 48), 0.25 * position, dtype=torch.float64)
        uniform = render_stack(image, blur, kernel_size=None, psf="disc")
        filled = render_layered(image, diopter, rng, sigma, "disc", fill_hidden=True)
        # documented: at most 0.03 off between layers (the uncovered part of a pixel shows a farther layer)
        assert (filled - uniform)[inner].abs().max() < (1e-12 if position == 4.0 else 0.03)


def test_hidden_fill_layers_bad_input_raises() -> None:
    image, weights = torch.rand(1, 3, 8, 8), torch.rand(1, 4, 8, 8)
    with pytest.raises(ValueError, match="reach_px"):
        hidden_fill_layers(image, weights, 0)
    with pytest.raises(ValueError, match="weights must be"):
        hidden_fill_layers(image, weights[..., :5], 2)


def test_output_is_a_weighted_mean_of_the_image() -> None:
    image, diopter, rng, sigma = _case(3, 2, 3, 24, 20, 3, 6)
    for fill_hidden in (False, True):
        out = render_layered(image, diopter, rng, sigma, "disc", fill_hidden=fill_hidden)
        assert out.min() >= image.min() - 1e-9 and out.max() <= image.max() + 1e-9
        const = render_layered(
            torch.full_like(image, 0.3), diopter, rng, sigma, "disc", fill_hidden=fill_hidden
        )
        assert torch.allclose(const, torch.full_like(const, 0.3), atol=1e-9)


def test_keeps_dtype_and_device() -> None:
    image, diopter, rng, sigma = _case(0, 1, 3, 10, 12, 2, 3, dtype=torch.float32)
    out = render_layered(image, diopter, rng, sigma)
    assert out.dtype == torch.float32 and out.device == image.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("psf", PSFS)
@pytest.mark.parametrize("fill_hidden", (False, True))
def test_cuda_matches_cpu(psf: str, fill_hidden: bool) -> None:
    image, diopter, rng, sigma = _case(5, 2, 3, 37, 45, 3, 6, dtype=torch.float32)
    cpu = (image.requires_grad_(), diopter.requires_grad_(), sigma.requires_grad_())
    gpu = tuple(x.detach().cuda().requires_grad_() for x in cpu)
    out = render_layered(cpu[0], cpu[1], rng, cpu[2], psf, fill_hidden=fill_hidden)
    out_c = render_layered(gpu[0], gpu[1], rng.cuda(), gpu[2], psf, fill_hidden=fill_hidden)
    assert out_c.device.type == "cuda"
    torch.testing.assert_close(out_c.cpu(), out, atol=1e-5, rtol=0)
    weight = torch.randn_like(out)
    grads = torch.autograd.grad((out * weight).sum(), cpu)
    grads_c = torch.autograd.grad((out_c * weight.cuda()).sum(), gpu)
    for gc, g in zip(grads_c, grads):
        torch.testing.assert_close(gc.cpu(), g, atol=1e-3, rtol=1e-3)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda i, d, r, s: (i[0], d, r, s), "image must be"),
        (lambda i, d, r, s: (i, d[..., :5], r, s), "diopter must be"),
        (lambda i, d, r, s: (i, d / 0.0, r, s), "diopter must be finite"),
        (lambda i, d, r, s: (i, d, r.flip(-1), s), "far < near"),
        (lambda i, d, r, s: (i, d, r, s[..., :1]), "L >= 2"),
        (lambda i, d, r, s: (i, d, r, -s), "finite and >= 0"),
        (lambda i, d, r, s: (i, d, r, s * float("nan")), "finite and >= 0"),
    ],
)
def test_bad_input_raises(change, match) -> None:
    args = change(*_case(0, 1, 3, 10, 12, 2, 3))
    with pytest.raises(ValueError, match=match):
        render_layered(*args)


def test_unknown_psf_raises() -> None:
    with pytest.raises(ValueError, match="psf must be"):
        render_layered(*_case(0, 1, 3, 10, 12, 2, 3), psf="box")


def test_layer_count() -> None:
    assert layer_count(0.0, 0.5, 64) == 2
    assert layer_count(10.0, 0.5, 64) == 21
    assert layer_count(100.0, 0.5, 64) == 64
    with pytest.raises(ValueError, match="step_px"):
        layer_count(1.0, 0.0, 64)
    with pytest.raises(ValueError, match="radius_span_px"):
        layer_count(float("nan"), 0.5, 64)
