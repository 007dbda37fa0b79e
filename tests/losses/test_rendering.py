"""The depth sweep: recovers the depth of stacks rendered by the same renderer; rejects bad input."""

from __future__ import annotations

import dataclasses
from unittest.mock import patch

import pytest
import torch

from focalstack.data.normalize import working_range_m
from focalstack.inference.fit import FitConfig, fit_scene
from focalstack.losses import (
    LossConfig,
    depth_sweep,
    noise_bias_map,
    rerender,
    select_psf,
    self_supervised_losses,
)
from focalstack.losses.rendering import blur_beyond_focus, blur_px
from focalstack.optics import render_stack
from tests.inference.test_fit import CAMERA, FOCUS, diopter_error, synthetic_stack

SPACING = (1 / FOCUS[0] - 1 / FOCUS[-1]) / (len(FOCUS) - 1)  # diopters between slices


def _inputs(stack: torch.Tensor, focus=FOCUS) -> dict[str, torch.Tensor]:
    focus_m = torch.tensor([focus], dtype=stack.dtype).expand(stack.shape[0], -1)
    one = torch.ones(stack.shape[0], dtype=stack.dtype)
    return {
        "stack": stack,
        "focus_m": focus_m,
        "focal_length_m": CAMERA.focal_length_m * one,
        "f_number": CAMERA.f_number * one,
        "pixel_size_m": CAMERA.pixel_size_m * one,
        "depth_range_m": working_range_m(focus_m),
    }


@pytest.mark.parametrize("linear_light", [False, True])
def test_sweep_finds_fronto_parallel_depths_between_candidates(linear_light: bool) -> None:
    """Two planes at depths that are no candidate: recovered to a small fraction of a slice spacing."""
    g = torch.Generator().manual_seed(0)
    aif = torch.rand(2, 3, 40, 40, generator=g)
    depth = torch.tensor([1.7, 3.9]).view(2, 1, 1, 1).expand(2, 1, 40, 40)
    loss = LossConfig(kernel_size=None, linear_light=linear_light)
    sigma = blur_px(_inputs(torch.zeros(2, len(FOCUS), 3, 40, 40)), depth)
    inputs = _inputs(rerender(aif, sigma, loss))
    found = depth_sweep(inputs, aif, loss=loss, candidates=24)
    assert found.shape == (2, 1, 40, 40)
    inner = (slice(None), 0, slice(8, -8), slice(8, -8))  # away from the zero-padded border
    assert (1 / found[inner] - 1 / depth[inner]).abs().max() < 0.1 * SPACING


def test_sweep_follows_a_slanted_scene_with_an_estimated_aif() -> None:
    """With focus stacking's AIF (not the truth) the sweep beats depth from focus on a noise-free stack.

    (A wide error window trades depth detail for robustness to noise: on this steep 64 px scene, sigma 4
    px costs more than it gains; the fit's default is meant for noisy, larger images.)
    """
    from focalstack.inference.baselines import dff_depth, focus_stack_aif

    stack = synthetic_stack(size=64, psf="gaussian")
    inputs = _inputs(stack.images[None])
    aif = focus_stack_aif(stack)[None]
    loss = LossConfig(kernel_size=None, linear_light=True)  # as the stack was rendered
    found = depth_sweep(inputs, aif, loss=loss, window_sigma_px=1.0)[0, 0]
    assert diopter_error(found, stack.depth_m) < 0.7 * diopter_error(dff_depth(stack).float(), stack.depth_m)
    lo, hi = inputs["depth_range_m"][0]
    assert bool(((found >= lo * (1 - 1e-5)) & (found <= hi * (1 + 1e-5))).all())
    exact = depth_sweep(inputs, stack.aif[None], loss=loss, window_sigma_px=0.0)
    assert diopter_error(exact[0, 0], stack.depth_m) < 0.01  # with the true AIF: nearly exact


def test_fit_starts_from_the_sweep_by_default() -> None:
    stack = synthetic_stack(size=64)
    assert FitConfig().init == "sweep"
    # a small window and no semi-global step for this small, steep, noise-free stack
    loss = dataclasses.replace(FitConfig().loss, sweep_window_px=1.0, sweep_penalties=None)
    start = {"iterations": 0, "scales": (1,), "loss": loss}
    swept = fit_scene(stack, FitConfig(**start), progress=False).depth_m
    dff = fit_scene(stack, FitConfig(**start, init="dff"), progress=False).depth_m
    assert diopter_error(swept, stack.depth_m) < diopter_error(dff, stack.depth_m)
    # unknown blur scale: the sweep cannot render yet, so the fit starts from DFF (no error)
    blind = FitConfig(**start, estimate_blur_scale=True)
    torch.testing.assert_close(fit_scene(stack, blind, progress=False).depth_m, dff)
    # a capped sweep size runs at lower resolution and is upsampled to the image
    small = fit_scene(stack, FitConfig(**start, sweep_max_pixels=16 * 16), progress=False)
    assert small.depth_m.shape == stack.depth_m.shape
    assert bool(torch.isfinite(small.depth_m).all())


def _plane_with_flat_middle(noise: float) -> tuple[dict[str, torch.Tensor], torch.Tensor, float]:
    """A fronto-parallel plane (2.5 m) whose AIF is textured in a 12 px frame and flat inside."""
    g = torch.Generator().manual_seed(1)
    aif = torch.rand(1, 3, 64, 64, generator=g)
    aif[..., 12:-12, 12:-12] = 0.5
    loss = LossConfig(kernel_size=None)
    sigma = blur_px(_inputs(torch.zeros(1, len(FOCUS), 3, 64, 64)), torch.full((1, 1, 64, 64), 2.5))
    stack = rerender(aif, sigma, loss)
    stack = stack + noise * torch.randn(stack.shape, generator=g)
    return _inputs(stack), aif, 1 / 2.5


def test_wide_sweep_windows_carry_depth_into_flat_regions() -> None:
    """Multi-scale aggregation: the flat middle gets the depth of its textured frame."""
    inputs, aif, diopters = _plane_with_flat_middle(noise=0.01)
    middle = (0, 0, slice(24, -24), slice(24, -24))  # > 12 px inside the flat region
    err = {
        levels: float(
            (1 / depth_sweep(inputs, aif, window_sigma_px=2.0, window_levels=levels)[middle] - diopters)
            .abs()
            .mean()
        )
        for levels in (1, 3)
    }
    assert err[3] < 0.2 * SPACING < err[1]


def test_semi_global_sweep_carries_depth_into_flat_regions() -> None:
    """SGM aggregation fills the flat middle from the frame; with zero penalties it changes nothing.

    (Compared in the frame: in the flat middle the plain sweep's minimum is decided by rounding.)
    """
    inputs, aif, diopters = _plane_with_flat_middle(noise=0.01)
    middle = (0, 0, slice(24, -24), slice(24, -24))
    plain = depth_sweep(inputs, aif, window_sigma_px=2.0)
    sgm = depth_sweep(inputs, aif, window_sigma_px=2.0, penalties=(1.0, 16.0))
    err = {k: float((1 / d[middle] - diopters).abs().mean()) for k, d in (("plain", plain), ("sgm", sgm))}
    assert err["sgm"] < 0.2 * SPACING < err["plain"]
    zero = depth_sweep(inputs, aif, window_sigma_px=2.0, penalties=(0.0, 0.0))
    frame = (0, 0, slice(0, 8))
    torch.testing.assert_close(zero[frame], plain[frame], rtol=1e-4, atol=0.0)


def test_default_fit_starts_textureless_regions_at_their_frames_depth() -> None:
    """The fit's default sweep (noise-corrected, semi-global) fills the flat middle; windows alone do not."""
    from focalstack.data.stack import FocalStack

    inputs, _, diopters = _plane_with_flat_middle(noise=0.01)
    stack = FocalStack(inputs["stack"][0].clamp(0, 1), torch.tensor(FOCUS), CAMERA, name="flat middle")
    assert FitConfig().loss.sweep_penalties is not None
    loss = dataclasses.replace(FitConfig().loss, linear_light=False)  # as the stack was rendered
    start = {"iterations": 0, "scales": (1,)}
    middle = (slice(24, -24), slice(24, -24))
    err = {}
    for name, penalties in (("default", loss.sweep_penalties), ("window", None)):
        cfg = FitConfig(**start, psf="gaussian", loss=dataclasses.replace(loss, sweep_penalties=penalties))
        depth = fit_scene(stack, cfg, progress=False).depth_m
        err[name] = float((1 / depth[middle] - diopters).abs().mean())
    assert err["default"] < 0.2 * SPACING < err["window"]


def test_sweep_normalisation_keeps_per_pixel_choices() -> None:
    """Dividing each pixel's errors by a positive number changes no per-pixel minimum (no window).

    Compared in the textured frame: in the flat middle every hypothesis renders the same image, so the
    minimum there is decided by rounding.
    """
    inputs, aif, _ = _plane_with_flat_middle(noise=0.02)
    plain = depth_sweep(inputs, aif, window_sigma_px=0.0)
    normalised = depth_sweep(inputs, aif, window_sigma_px=0.0, normalise=True)
    frame = (0, 0, slice(0, 10))
    torch.testing.assert_close(normalised[frame], plain[frame], rtol=1e-4, atol=0.0)
    assert not torch.equal(
        depth_sweep(inputs, aif, window_levels=3, normalise=True), depth_sweep(inputs, aif, window_levels=3)
    )


@pytest.mark.parametrize("kwargs", [{"candidates": 2}, {"window_sigma_px": -1.0}, {"window_levels": 0}])
def test_sweep_rejects_bad_settings(kwargs) -> None:
    inputs = _inputs(torch.rand(1, len(FOCUS), 3, 8, 8))
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        depth_sweep(inputs, torch.rand(1, 3, 8, 8), **kwargs)


def test_sweep_rejects_mismatched_aif() -> None:
    inputs = _inputs(torch.rand(1, len(FOCUS), 3, 8, 8))
    with pytest.raises(ValueError, match="aif"):
        depth_sweep(inputs, torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match="sweep_candidates"):
        LossConfig(sweep_candidates=2)
    with pytest.raises(ValueError, match="sweep_levels"):
        LossConfig(sweep_levels=0)
    with pytest.raises(ValueError, match="sweep_penalties"):
        LossConfig(sweep_penalties=(2.0, 1.0))
    with pytest.raises(ValueError, match="penalties"):
        depth_sweep(inputs, torch.rand(1, 3, 8, 8), penalties=(-1.0, 1.0))
    with pytest.raises(ValueError, match="sweep_max_pixels"):
        FitConfig(sweep_max_pixels=0)
    with pytest.raises(ValueError, match="psf"):
        FitConfig(psf="box")
    with pytest.raises(ValueError, match="border"):
        select_psf(inputs, torch.rand(1, 3, 8, 8), border=-1)
    with pytest.raises(ValueError, match="aif"):
        select_psf(inputs, torch.rand(1, 3, 8, 9))


@pytest.mark.parametrize("psf", ["disc", "gaussian"])
def test_select_psf_tells_the_psf_a_stack_was_made_with(psf: str) -> None:
    """From focus stacking's AIF (not the truth), whichever PSF rendered the stack re-renders it better."""
    from focalstack.inference.baselines import focus_stack_aif

    stack = synthetic_stack(size=48, psf=psf)
    inputs, aif = _inputs(stack.images[None]), focus_stack_aif(stack)[None]
    loss = LossConfig(kernel_size=None, linear_light=True)  # as the stack was rendered
    chosen, errors = select_psf(inputs, aif, loss=loss)
    assert chosen == psf and set(errors) == {"disc", "gaussian"}
    assert errors[psf] < 0.95 * errors[({"disc", "gaussian"} - {psf}).pop()]
    # the loss's own psf is not used
    assert select_psf(inputs, aif, loss=dataclasses.replace(loss, psf="disc")) == (chosen, errors)


def test_sweep_reuses_given_costs() -> None:
    """Precomputed costs (as the fit's PSF choice hands on) give the same depth; wrong shapes are refused."""
    from focalstack.losses.rendering import sweep_costs

    inputs, aif, _ = _plane_with_flat_middle(noise=0.01)
    costs = sweep_costs(inputs, aif, candidates=16)
    kwargs = {"candidates": 16, "penalties": (2.0, 64.0)}
    given = depth_sweep(inputs, aif, costs=costs, **kwargs)
    torch.testing.assert_close(given, depth_sweep(inputs, aif, **kwargs))
    with pytest.raises(ValueError, match="costs"):
        depth_sweep(inputs, aif, costs=costs[:, :8], **kwargs)


def _noise_bias_reference(
    errors: torch.Tensor, levels: torch.Tensor, intensity: torch.Tensor
) -> torch.Tensor:
    """Per pixel and hypothesis, numpy's piecewise-linear interpolation (constant beyond the ends)."""
    import numpy as np

    B, L, N = errors.shape
    out = np.empty((B, N, *intensity.shape[-2:]))
    for b in range(B):
        for n in range(N):
            out[b, n] = np.interp(intensity[b, 0].numpy(), levels[b].numpy(), errors[b, :, n].numpy())
    return torch.from_numpy(out).to(errors.dtype)


@pytest.mark.parametrize("seed", range(6))
def test_noise_bias_map_interpolates_like_numpy(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    B, L, N, H, W = (int(v) for v in torch.randint(1, 6, (5,), generator=g))
    levels = torch.rand(B, L, generator=g, dtype=torch.float64).sort(dim=1).values + torch.arange(L) * 1e-3
    errors = torch.rand(B, L, N, generator=g, dtype=torch.float64)
    intensity = torch.rand(B, 1, H, W, generator=g, dtype=torch.float64) * 1.4 - 0.2  # also beyond the ends
    got = noise_bias_map(errors, levels, intensity)
    assert got.shape == (B, N, H, W)
    torch.testing.assert_close(got, _noise_bias_reference(errors, levels, intensity))


def test_noise_bias_map_rejects_bad_input() -> None:
    errors, levels, intensity = torch.rand(1, 3, 4), torch.tensor([[0.1, 0.5, 0.9]]), torch.rand(1, 1, 5, 5)
    with pytest.raises(ValueError, match="increase"):
        noise_bias_map(errors, levels.flip(1), intensity)
    with pytest.raises(ValueError, match="reference_errors"):
        noise_bias_map(errors[0], levels, intensity)
    with pytest.raises(ValueError, match="reference_errors"):
        noise_bias_map(errors, levels[:, :2], intensity)
    with pytest.raises(ValueError, match="window"):
        noise_bias_map(errors, levels, intensity, window_sigma_px=-1.0)


def test_noise_bias_map_window_averages_the_intensity_first() -> None:
    import kornia

    errors, levels = (
        torch.rand(1, 3, 4, dtype=torch.float64),
        torch.tensor([[0.1, 0.5, 0.9]], dtype=torch.float64),
    )
    intensity = torch.rand(1, 1, 20, 24, dtype=torch.float64)
    blurred = kornia.filters.gaussian_blur2d(intensity, (13, 13), (2.0, 2.0), border_type="replicate")
    torch.testing.assert_close(
        noise_bias_map(errors, levels, intensity, window_sigma_px=2.0),
        noise_bias_map(errors, levels, blurred),
    )


def test_sweep_noise_bias_replaces_the_reference_mean() -> None:
    """A noise bias equal everywhere to the reference's mean gives the reference's depth; bad shapes raise."""
    from focalstack.losses.rendering import sweep_costs

    inputs, aif, _ = _plane_with_flat_middle(noise=0.01)
    flat = aif.mean().expand_as(aif) + 0.01 * torch.randn(
        aif.shape, generator=torch.Generator().manual_seed(0)
    )
    reference = sweep_costs(
        {**inputs, "stack": flat[:, None].expand_as(inputs["stack"])}, flat, candidates=16
    )
    bias = reference.mean(dim=(2, 3), keepdim=True).expand(-1, -1, *aif.shape[-2:])
    kwargs = {"candidates": 16, "penalties": (2.0, 64.0), "noise_costs": reference}
    torch.testing.assert_close(
        depth_sweep(inputs, aif, noise_bias=bias, **kwargs), depth_sweep(inputs, aif, **kwargs)
    )
    with pytest.raises(ValueError, match="noise_bias"):
        depth_sweep(inputs, aif, noise_bias=bias[:, :8], **kwargs)


def test_default_fit_corrects_signal_dependent_noise_in_dark_flat_regions() -> None:
    """Sensor noise (shot + read, in linear light) is strongest in the shadows of an sRGB stack. A dark
    flat region then keeps more noise than the stack's overall level, which one reference under-corrects;
    references per intensity (the default) let the semi-global sweep fill it from its bright frame.
    Plain focus stacking: noise-aware stacking shrinks the noise lean itself, and with it the difference
    this test isolates.
    """
    from focalstack.data.stack import FocalStack
    from focalstack.utils.color import linear_to_srgb, srgb_to_linear

    g = torch.Generator().manual_seed(1)
    aif = 0.5 + 0.5 * torch.rand(1, 3, 96, 96, generator=g)
    aif[..., 16:-16, 16:-16] = 0.08
    sigma = blur_px(_inputs(torch.zeros(1, len(FOCUS), 3, 96, 96)), torch.full((1, 1, 96, 96), 2.5))
    linear = rerender(srgb_to_linear(aif), sigma, LossConfig(kernel_size=None))
    linear = linear + (0.0005 * linear.clamp_min(0) + 0.002**2).sqrt() * torch.randn(
        linear.shape, generator=g
    )
    stack = FocalStack(linear_to_srgb(linear.clamp(0, 1))[0], torch.tensor(FOCUS), CAMERA, name="dark middle")
    middle = (slice(28, -28), slice(28, -28))
    err = {}
    for levels in (1, FitConfig().loss.sweep_noise_levels):
        # Unfiltered residuals as well, to isolate the references: with the low-pass this middle ends
        # 0.80 slices off (0.31 without); the full default (noise-aware stacking too) 1.74 (2.0 without).
        loss = dataclasses.replace(FitConfig().loss, sweep_noise_levels=levels, sweep_residual_blur_px=0.0)
        depth = fit_scene(
            stack,
            FitConfig(iterations=0, scales=(1,), psf="gaussian", loss=loss, noise_aware_aif=False),
            progress=False,
        )
        err[levels] = float((1 / depth.depth_m[middle] - 1 / 2.5).abs().mean() / SPACING)  # slices
    assert err[6] < 0.5 < err[1]


def test_sweep_residual_blur_equals_the_sweep_of_blurred_inputs() -> None:
    """Blurring is linear and shift-invariant, as is each fronto-parallel hypothesis in sRGB: low-passing
    the residual equals sweeping the low-passed stack with the low-passed AIF (away from the border)."""
    import kornia

    from focalstack.losses.rendering import sweep_costs

    g = torch.Generator().manual_seed(3)
    aif = torch.rand(1, 3, 96, 96, generator=g, dtype=torch.float64)
    stack = torch.rand(1, len(FOCUS), 3, 96, 96, generator=g, dtype=torch.float64)
    loss = LossConfig(kernel_size=None, psf="gaussian")

    def lowpass(x: torch.Tensor) -> torch.Tensor:
        return kornia.filters.gaussian_blur2d(x, (11, 11), (1.5, 1.5), border_type="replicate")

    got = sweep_costs(_inputs(stack), aif, loss=dataclasses.replace(loss, sweep_residual_blur_px=1.5))
    want = sweep_costs(_inputs(lowpass(stack[0])[None]), lowpass(aif), loss=loss)
    inner = (..., slice(40, -40), slice(40, -40))  # beyond the reach of the blur and the renderer
    torch.testing.assert_close(got[inner], want[inner])


def test_sweep_residual_blur_steadies_per_pixel_depth_under_noise() -> None:
    """A plane of smooth texture under strong white noise: per-pixel sweep depths scatter less when the
    residuals are low-passed first (the defocus evidence is at low frequencies, the noise everywhere)."""
    import kornia

    g = torch.Generator().manual_seed(4)
    aif = torch.rand(1, 3, 96, 96, generator=g)
    aif = kornia.filters.gaussian_blur2d(aif, (9, 9), (1.5, 1.5)).sub(0.5).mul(3.0).add(0.5).clamp(0, 1)
    loss = LossConfig(kernel_size=None, psf="gaussian")
    sigma = blur_px(_inputs(torch.zeros(1, len(FOCUS), 3, 96, 96)), torch.full((1, 1, 96, 96), 2.0))
    stack = rerender(aif, sigma, loss) + 0.05 * torch.randn(1, len(FOCUS), 3, 96, 96, generator=g)
    inner = (0, 0, slice(16, -16), slice(16, -16))

    def spread(blur: float) -> float:
        cfg = dataclasses.replace(loss, sweep_residual_blur_px=blur)
        depth = depth_sweep(_inputs(stack), aif, loss=cfg, window_sigma_px=0.0)
        return float((1 / depth[inner] - 0.5).abs().mean())

    assert spread(1.0) < 0.7 * spread(0.0)


def test_loss_config_rejects_a_negative_residual_blur() -> None:
    with pytest.raises(ValueError, match="sweep_residual_blur_px"):
        LossConfig(sweep_residual_blur_px=-1.0)


@pytest.mark.parametrize("linear_light", [False, True])
def test_layered_rerender_of_a_plane_is_the_per_pixel_render(linear_light: bool) -> None:
    """One depth per image: the occlusion-aware renderer blurs as the per-pixel one (away from borders)."""
    from focalstack.losses.rendering import rerender_layered

    g = torch.Generator().manual_seed(1)
    aif = torch.rand(2, 3, 48, 48, generator=g, dtype=torch.float64)
    inputs = {k: v.double() for k, v in _inputs(torch.zeros(2, len(FOCUS), 3, 48, 48)).items()}
    near, far = inputs["depth_range_m"][0].tolist()
    # a layer's depth exactly: the layers split the range evenly in diopters
    layered = LossConfig(kernel_size=None, psf="disc", linear_light=linear_light, render_mode="layered")
    depth = torch.full((2, 1, 48, 48), 1.0 / (1 / far + (1 / near - 1 / far) * 0.5), dtype=torch.float64)
    out = rerender_layered(aif, inputs, depth, dataclasses.replace(layered, layer_step_px=1e-3, max_layers=3))
    ref = rerender(aif, blur_px(inputs, depth), dataclasses.replace(layered, render_mode="gather"))
    inner = (slice(None),) * 3 + (slice(10, -10), slice(10, -10))
    assert out.shape == (2, len(FOCUS), 3, 48, 48)
    assert torch.allclose(out[inner], ref[inner], atol=1e-9)


def test_layered_rerender_fills_hidden_surfaces_when_asked() -> None:
    from focalstack.losses.rendering import rerender_layered
    from focalstack.optics import render_layered

    g = torch.Generator().manual_seed(2)
    aif = torch.rand(1, 3, 32, 32, generator=g, dtype=torch.float64)
    inputs = {k: v.double() for k, v in _inputs(torch.zeros(1, len(FOCUS), 3, 32, 32)).items()}
    near, far = inputs["depth_range_m"][0].tolist()
    depth = torch.full((1, 1, 32, 32), far, dtype=torch.float64)
    depth[..., 8:24, 8:24] = near  # a near square over a far wall
    layered = LossConfig(kernel_size=None, psf="disc", linear_light=False, render_mode="layered")
    holed = rerender_layered(aif, inputs, depth, layered)
    filled = rerender_layered(aif, inputs, depth, dataclasses.replace(layered, layered_fill_hidden=True))
    assert (filled - holed).abs().max() > 1e-2
    # the same layers as without the fill, each continued behind the square
    with patch("focalstack.losses.rendering.render_layered", wraps=render_layered) as spy:
        rerender_layered(aif, inputs, depth, dataclasses.replace(layered, layered_fill_hidden=True))
    assert spy.call_args.kwargs["fill_hidden"] is True


def test_layered_losses_give_every_input_a_gradient() -> None:
    stack = synthetic_stack(size=32, psf="disc")
    inputs = _inputs(stack.images[None])
    depth = stack.depth_m[None, None].clone().requires_grad_(True)
    aif = stack.aif[None].clone().requires_grad_(True)
    cfg = LossConfig(kernel_size=None, psf="disc", linear_light=True, render_mode="layered")
    terms = self_supervised_losses(inputs, {"aif": aif, "depth_m": depth}, cfg)
    terms["total"].backward()
    for x in (depth, aif):
        assert x.grad is not None and bool(torch.isfinite(x.grad).all()) and x.grad.abs().sum() > 0


def test_layered_losses_explain_an_occluding_scene_better_than_per_pixel_ones() -> None:
    """A stack synthesised with occlusion (``focalstack.data.synth``, an independent numpy layering): its
    true depth and AIF re-render it better through the layered renderer than through the per-pixel one
    (hidden parts not filled in, which the fit cannot know either)."""
    from focalstack.data.synth import synthesize_stack

    scene = synthetic_stack(size=48, psf="disc")
    images = synthesize_stack(
        scene.aif, scene.depth_m, CAMERA, list(FOCUS), model="layered", psf="disc", fill_hidden=False
    )
    inputs = _inputs(images[None])
    truth = {"aif": scene.aif[None], "depth_m": scene.depth_m[None, None]}
    cfg = LossConfig(kernel_size=None, psf="disc", linear_light=True, render_mode="layered")
    layered = self_supervised_losses(inputs, truth, cfg)["recon"].item()
    per_pixel = self_supervised_losses(inputs, truth, dataclasses.replace(cfg, render_mode="gather"))[
        "recon"
    ].item()
    assert layered < 0.5 * per_pixel


def test_the_sweep_runs_with_the_layered_renderer() -> None:
    stack = synthetic_stack(size=32, psf="disc")
    inputs = _inputs(stack.images[None])
    loss = LossConfig(kernel_size=None, psf="disc", linear_light=True)
    plain = depth_sweep(inputs, stack.aif[None], loss=loss)
    layered = depth_sweep(inputs, stack.aif[None], loss=dataclasses.replace(loss, render_mode="layered"))
    assert torch.equal(plain, layered)


@pytest.mark.parametrize("kwargs", [{"layer_step_px": 0.0}, {"max_layers": 1}, {"render_mode": "box"}])
def test_loss_config_rejects_bad_layer_settings(kwargs) -> None:
    with pytest.raises(ValueError):
        LossConfig(**kwargs)


# ---------------------------------------------------------------- sweep: blur relative beyond the focus range


def test_blur_beyond_focus_changes_only_depths_nearer_than_every_focus_and_is_continuous() -> None:
    inputs = _inputs(torch.zeros(1, len(FOCUS), 3, 1, 1, dtype=torch.float64))
    focus = torch.tensor([FOCUS], dtype=torch.float64)
    diopters = torch.linspace(0.05, 1.6, 301, dtype=torch.float64)
    depth = (1.0 / diopters).view(1, 1, 1, -1)
    sigma = blur_px(inputs, depth)  # (1, S, 1, N)
    rel = blur_beyond_focus(sigma, depth, focus)
    nearer = diopters > 1.0 / FOCUS[0]
    assert nearer.any() and (diopters < 1.0 / FOCUS[-1]).any()
    assert torch.equal(rel[..., ~nearer], sigma[..., ~nearer])  # farther than every focus too
    assert (rel[..., nearer].amin(dim=1) < 1e-12).all()  # the least-blurred slice is the source
    assert (rel[..., nearer] <= sigma[..., nearer] + 1e-12).all()
    assert rel.diff(dim=-1).abs().max() < 2 * sigma.diff(dim=-1).abs().max()  # no jump


def test_relative_blur_after_the_least_blur_is_each_slice_blur_for_the_gaussian() -> None:
    """Gaussian blurs compose in quadrature: the least-blurred slice blurred by the relative blur is every
    slice's blur, beyond the focus range."""
    inputs = _inputs(torch.zeros(1, len(FOCUS), 3, 1, 1, dtype=torch.float64))
    depth = torch.full((1, 1, 1, 1), 1.0 / 1.3, dtype=torch.float64)  # nearer than every focus distance
    sigma = blur_px(inputs, depth)
    rel = blur_beyond_focus(sigma, depth, torch.tensor([FOCUS], dtype=torch.float64))
    image = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    S = len(FOCUS)

    def blur(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return render_stack(x, s.expand(1, S, 48, 48), kernel_size=None, psf="gaussian")

    least = blur(image, sigma.amin(dim=1, keepdim=True))[:, 0]
    inner = (..., slice(16, -16), slice(16, -16))
    assert torch.allclose(blur(least, rel)[inner], blur(image, sigma)[inner], atol=2e-3)


def test_relative_sweep_finds_a_plane_nearer_than_the_nearest_focus() -> None:
    """No slice is sharp there, so the focus-stacked AIF is blurred; taken as sharp, the sweep answers too
    far (toward the nearest focus distance)."""
    from focalstack.data.stack import FocalStack
    from focalstack.inference.baselines import focus_stack_aif

    aif = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    depth = torch.full((1, 1, 48, 48), 1.0 / 1.3)  # 1.3 D; the nearest focus is at 1.0 D
    loss = LossConfig(kernel_size=None, linear_light=True, psf="gaussian")
    inputs = _inputs(torch.zeros(1, len(FOCUS), 3, 48, 48))
    stack = rerender(aif, blur_px(inputs, depth), loss)[0]
    inputs = {**_inputs(stack[None]), "depth_range_m": working_range_m(inputs["focus_m"], 2.0)}
    stacked = focus_stack_aif(FocalStack(images=stack, focus_m=torch.tensor(FOCUS, dtype=torch.float64)))
    errors = {}
    for relative in (False, True):
        cfg = dataclasses.replace(loss, sweep_relative_beyond_focus=relative)
        found = depth_sweep(inputs, stacked[None], loss=cfg, candidates=32)[0, 0, 8:-8, 8:-8]
        errors[relative] = (1.0 / found - 1.3).abs().median().item()
    assert errors[True] < 0.25 * SPACING < errors[False]


def test_relative_sweep_leaves_hypotheses_within_the_focus_range_as_they_were() -> None:
    from focalstack.losses.rendering import sweep_costs

    g = torch.Generator().manual_seed(2)
    stack, aif = torch.rand(1, len(FOCUS), 3, 24, 24, generator=g), torch.rand(1, 3, 24, 24, generator=g)
    inputs = {**_inputs(stack), "depth_range_m": working_range_m(torch.tensor([FOCUS]), 2.0)}
    loss = LossConfig(linear_light=True)
    sharp = sweep_costs(inputs, aif, loss=loss, candidates=12)
    relative = sweep_costs(
        inputs, aif, loss=dataclasses.replace(loss, sweep_relative_beyond_focus=True), candidates=12
    )
    t = torch.linspace(0.0, 1.0, 12)
    near, far = inputs["depth_range_m"][0].tolist()
    diopter = 1 / far + (1 / near - 1 / far) * t
    within = diopter <= 1.0 / FOCUS[0]
    assert within.any() and (~within).any()
    assert torch.equal(relative[:, within], sharp[:, within])
    assert not torch.allclose(relative[:, ~within], sharp[:, ~within])
