"""Per-scene fitting on synthetic stacks rendered with the training renderer, and the ``fit`` command."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from focalstack.data.normalize import t_to_depth
from focalstack.data.stack import FocalStack
from focalstack.inference.fit import (
    FitConfig,
    _noise_costs,
    _scene_inputs,
    choose_psf,
    fit_range_m,
    fit_scene,
    initial_estimate,
    pinned_fraction,
    resolve_camera,
    scale_steps,
)
from focalstack.losses import LossConfig
from focalstack.optics import ThinLens, depth_to_sigma_px, render_stack
from focalstack.utils.color import linear_to_srgb, srgb_to_linear

CAMERA = ThinLens(0.05, 2.0, 1e-4)
FOCUS = (1.0, 1.5, 2.2, 3.2, 5.0)


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny images: a second intra-op thread only adds contention (10x slower on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic_stack(
    size: int = 32, blur_scale: float = 1.0, camera: ThinLens | None = CAMERA, psf: str | None = None
) -> FocalStack:
    """Multi-scale texture on a slanted plane with a disc in front (0.3 - 0.95 diopters), blur 0 - 2.4 px.

    Rendered with ``psf`` (default: the Gaussian).
    """
    psf = psf or "gaussian"
    g = torch.Generator().manual_seed(0)
    aif = sum(
        F.interpolate(
            torch.rand(1, 3, size // s + 1, size // s + 1, generator=g), size=(size, size), mode="bilinear"
        )
        for s in (2, 4, 8)
    )
    aif = ((aif / 3 - 0.5) * 2.0 + 0.5).clamp(0, 1)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    diopters = torch.where((xx - 0.4) ** 2 + (yy - 0.5) ** 2 < 0.06, 0.95, 0.3 + 0.6 * xx)
    return rendered_stack(aif[0], 1.0 / diopters, blur_scale, camera, psf)


def rendered_stack(
    aif: torch.Tensor, depth_m: torch.Tensor, blur_scale: float, camera: ThinLens | None, psf: str
) -> FocalStack:
    """The stack of ``aif`` (3, H, W) at ``depth_m`` (H, W) through ``CAMERA`` at ``FOCUS``."""
    depth = depth_m[None, None]
    sigma = depth_to_sigma_px(
        depth, torch.tensor([FOCUS]), CAMERA.focal_length_m, CAMERA.f_number, CAMERA.pixel_size_m
    )
    # blurred in linear light, as real optics (and the fit's default renderer) do
    linear = render_stack(srgb_to_linear(aif[None]), sigma * blur_scale, kernel_size=None, psf=psf)
    images = linear_to_srgb(linear)[0]
    return FocalStack(images, torch.tensor(FOCUS), camera, depth_m=depth_m, aif=aif, name="synthetic")


def diopter_error(depth: torch.Tensor, gt: torch.Tensor) -> float:
    return float((1 / depth - 1 / gt).abs().mean())


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


@pytest.mark.parametrize("psf", ["disc", "gaussian"])
def test_fit_recovers_depth_and_aif(psf: str) -> None:
    stack = synthetic_stack(psf=psf)
    result = fit_scene(stack, FitConfig(init="constant", scales=(2, 1), iterations=40), progress=False)
    assert result.psf == choose_psf(stack) == psf  # chosen from the stack ("auto")
    other = "gaussian" if psf == "disc" else "disc"
    assert choose_psf(stack, FitConfig(psf=other)) == other
    assert result.depth_m.shape == (32, 32) and result.aif.shape == (3, 32, 32)
    assert result.rerendered.shape == stack.images.shape and result.blur_scale == 1.0
    constant = torch.full_like(stack.depth_m, float(stack.depth_m.median()))
    assert diopter_error(result.depth_m, stack.depth_m) < 0.1 * diopter_error(constant, stack.depth_m)
    assert psnr(result.aif, stack.aif) > 35.0
    assert psnr(result.rerendered, stack.images) > 35.0
    assert {"width", "step", "blur_scale", "recon", "total"} <= set(result.history[-1])
    # 40 steps per scale, then 40 of the AIF alone (aif_prior "after"), each improving on its start
    assert [h["width"] for h in result.history] == [16] * 40 + [32] * 80
    assert result.history[79]["total"] < result.history[40]["total"]  # the fine scale also improves
    assert result.history[-1]["total"] < result.history[80]["total"]


def test_fit_with_the_layered_renderer_recovers_an_occluding_scene() -> None:
    """The occlusion-aware renderer inside the fit, on a stack synthesised with occlusion."""
    stack = occluding_stack()
    cfg = FitConfig(scales=(2, 1), iterations=20, psf="disc")
    cfg.loss = dataclasses.replace(cfg.loss, render_mode="layered")
    result = fit_scene(stack, cfg, progress=False)
    assert result.depth_m.shape == (32, 32) and bool(torch.isfinite(result.depth_m).all())
    constant = torch.full_like(stack.depth_m, float(stack.depth_m.median()))
    assert diopter_error(result.depth_m, stack.depth_m) < 0.2 * diopter_error(constant, stack.depth_m)
    assert psnr(result.rerendered, stack.images) > 35.0
    assert result.history[-1]["recon"] < result.history[0]["recon"]


def occluding_stack() -> FocalStack:
    """``synthetic_stack`` re-synthesised with occlusion (a near surface's blur covers a farther one)."""
    from focalstack.data.synth import synthesize_stack

    scene = synthetic_stack(psf="disc")
    images = synthesize_stack(scene.aif, scene.depth_m, CAMERA, list(FOCUS), psf="disc", fill_hidden=False)
    return dataclasses.replace(scene, images=images)


def test_layered_refinement_continues_where_the_fit_ends() -> None:
    """refine="layered" is the layered fit started from the first stage's depth and AIF, same range."""
    stack = occluding_stack()
    cfg = FitConfig(scales=(2, 1), iterations=10, psf="disc", noise_reference_px=64)
    first = fit_scene(stack, cfg, progress=False)
    layered = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, render_mode="layered"))
    assert fit_range_m(stack, cfg) == pytest.approx(first.depth_range_m)  # the sweep did not widen it
    second = fit_scene(stack, layered, init_depth_m=first.depth_m, init_aif=first.aif, progress=False)
    refined = fit_scene(stack, dataclasses.replace(cfg, refine="layered"), progress=False)
    torch.testing.assert_close(refined.depth_m, second.depth_m, rtol=0, atol=0)
    torch.testing.assert_close(refined.aif, second.aif, rtol=0, atol=0)
    torch.testing.assert_close(refined.rerendered, second.rerendered, rtol=0, atol=0)
    assert refined.history == first.history + second.history
    assert refined.depth_range_m == first.depth_range_m and refined.psf == "disc"


def test_layered_refinement_keeps_the_fitted_blur_scale() -> None:
    """With estimate_blur_scale the second stage starts from the first stage's blur scale."""
    stack = synthetic_stack(blur_scale=1.4)
    cfg = FitConfig(init="constant", scales=(2, 1), iterations=40, estimate_blur_scale=True)
    result = fit_scene(stack, dataclasses.replace(cfg, refine="layered"), progress=False)
    assert len(result.history) == 2 * len(fit_scene(stack, cfg, progress=False).history)
    middle = result.history[len(result.history) // 2]["blur_scale"]
    assert abs(middle / 1.4 - 1) < 0.1 and abs(result.blur_scale / 1.4 - 1) < 0.1


def test_coarser_scales_get_more_steps() -> None:
    """A scale k times smaller than the last gets iterations * k ** step_growth steps."""
    sizes = [(13, 20), (26, 40), (52, 80)]
    assert scale_steps(sizes, FitConfig(iterations=30)) == [30, 30, 30]  # the default: the same
    assert scale_steps(sizes, FitConfig(iterations=30, step_growth=1.0)) == [120, 60, 30]
    assert scale_steps(sizes, FitConfig(iterations=30, step_growth=2.0)) == [480, 120, 30]
    assert scale_steps([(52, 80)], FitConfig(iterations=7)) == [7]  # a single scale: the iterations
    cfg = FitConfig(init="constant", scales=(2, 1), iterations=3, step_growth=1.0, aif_prior="joint")
    widths = [h["width"] for h in fit_scene(synthetic_stack(), cfg, progress=False).history]
    assert widths == [16] * 6 + [32] * 3


def test_aif_prior_after_keeps_the_depth_of_a_fit_without_it() -> None:
    """aif_prior "after" fits depth exactly as without the coarse-AIF term, then refits the AIF alone."""
    stack = synthetic_stack(16)
    cfg = FitConfig(init="constant", scales=(1,), iterations=10)
    without = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, aif_weight=0.0))
    after, joint = fit_scene(stack, cfg, progress=False), fit_scene(stack, without, progress=False)
    torch.testing.assert_close(after.depth_m, joint.depth_m, rtol=0, atol=0)
    assert not torch.equal(after.aif, joint.aif)
    assert [h["aif"] for h in after.history[:10]] == [0.0] * 10 and after.history[10]["aif"] > 0
    assert after.history[-1]["aif"] < after.history[10]["aif"]  # the refit AIF moves towards the prior
    paper = fit_scene(
        stack, FitConfig(init="constant", scales=(1,), iterations=10, aif_prior="joint"), progress=False
    )
    assert len(paper.history) == 10 and not torch.equal(paper.depth_m, after.depth_m)
    # with no coarse-AIF term there is nothing to refit: both schedules are the same fit
    no_prior = fit_scene(stack, dataclasses.replace(without, aif_prior="joint"), progress=False)
    torch.testing.assert_close(no_prior.depth_m, joint.depth_m, rtol=0, atol=0)
    assert len(joint.history) == 10


def test_fit_recovers_blur_scale() -> None:
    stack = synthetic_stack(blur_scale=1.4)
    cfg = FitConfig(init="constant", scales=(2, 1), iterations=40, estimate_blur_scale=True)
    assert abs(fit_scene(stack, cfg, progress=False).blur_scale / 1.4 - 1) < 0.1


def test_unknown_pixel_pitch_is_absorbed_by_the_blur_scale() -> None:
    stack = synthetic_stack(camera=None)
    stack.meta["camera"] = {"focal_length_m": CAMERA.focal_length_m, "f_number": CAMERA.f_number}
    cfg = FitConfig(
        init="constant", scales=(2, 1), iterations=40, estimate_blur_scale=True, nominal_span_sigma_px=3.0
    )
    result = fit_scene(stack, cfg, progress=False)
    # The nominal pitch gives the nearest focus distance 3 px of blur in the farthest slice.
    expected = CAMERA.sigma_px(min(FOCUS), max(FOCUS)) / 3.0
    assert abs(result.blur_scale / expected - 1) < 0.1
    constant = torch.full_like(stack.depth_m, float(stack.depth_m.median()))
    assert diopter_error(result.depth_m, stack.depth_m) < 0.1 * diopter_error(constant, stack.depth_m)


def test_initial_values_are_used() -> None:
    stack = synthetic_stack(16)
    cfg = FitConfig(scales=(1,), iterations=0)
    result = fit_scene(stack, cfg, init_depth_m=stack.depth_m, init_aif=stack.aif, progress=False)
    torch.testing.assert_close(result.depth_m, stack.depth_m, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(result.aif, stack.aif.clamp(1e-3, 1 - 1e-3), rtol=1e-4, atol=1e-4)


def test_dff_init_uses_the_baseline() -> None:
    from focalstack.inference.baselines import dff_depth

    stack = synthetic_stack(16)
    result = fit_scene(stack, FitConfig(init="dff", scales=(1,), iterations=0), progress=False)
    torch.testing.assert_close(result.depth_m, dff_depth(stack), rtol=1e-3, atol=1e-3)


def test_initial_estimate_is_where_the_fit_starts() -> None:
    """The sweep start (PSF resolved as the fit does) is what a fit with no steps at full size returns."""
    stack = synthetic_stack(24, psf="disc")
    cfg = FitConfig(scales=(1,), iterations=0, noise_reference_px=64)
    depth, aif = initial_estimate(stack, cfg)
    assert depth.shape == (24, 24) and aif.shape == (3, 24, 24)
    result = fit_scene(stack, cfg, progress=False)
    torch.testing.assert_close(result.depth_m, depth, rtol=1e-3, atol=1e-3)
    assert initial_estimate(stack, FitConfig(init="constant")) == (None, None)


def test_the_sweep_start_has_its_near_halos_retracted(monkeypatch) -> None:
    """retract_halos (the default): the start is the sweep's depth through retract_near_halos, with the
    radius from the optics and the stacked AIF as guide; off, or with another init, the sweep's as is."""
    import focalstack.inference.halo as halo_module
    from focalstack.inference.halo import halo_radius_px

    seen = []
    real = halo_module.retract_near_halos

    def spy(depth, guide, spacing, radius, **kwargs):
        seen.append((depth.shape, guide.shape, spacing, radius))
        return real(depth, guide, spacing, radius, **kwargs)

    monkeypatch.setattr(halo_module, "retract_near_halos", spy)
    stack = occluding_stack()
    cfg = FitConfig(scales=(1,), iterations=0, noise_reference_px=64, psf="disc")
    on, aif = initial_estimate(stack, cfg)
    off, _ = initial_estimate(stack, dataclasses.replace(cfg, retract_halos=False))
    assert len(seen) == 1 and seen[0][:2] == ((1, 1, 32, 32), (1, 3, 32, 32))
    dioptres = 1.0 / torch.tensor(FOCUS)
    assert seen[0][2] == pytest.approx(float(dioptres[0] - dioptres[-1]) / 4, rel=1e-5)
    near, far = fit_range_m(stack, cfg)
    camera = (CAMERA.focal_length_m, CAMERA.f_number, CAMERA.pixel_size_m)
    sigma = depth_to_sigma_px(torch.tensor([[[near, far]]]), torch.tensor([FOCUS]), *camera)
    assert seen[0][3] == halo_radius_px(float(sigma.max()), cfg.loss.sweep_window_px)
    assert (on >= off - 1e-6).all()
    torch.testing.assert_close(on, real(off[None, None], aif[None], seen[0][2], seen[0][3])[0, 0])
    initial_estimate(stack, dataclasses.replace(cfg, init="dff"))
    assert len(seen) == 2  # fit_range_m ran the sweep once more; the DFF start is not retracted


def pinned_sweep(monkeypatch, pinned_rounds: int, record) -> list:
    """Replace the fit's sweep by one that puts every pixel at the near end for its first
    ``pinned_rounds`` calls (mid range after); returns the list of ``record(cfg)`` of each call."""
    import focalstack.inference.fit as fit_module

    calls = []

    def sweep(full, aif, cfg, costs=None):
        calls.append(record(cfg))
        t = 1.0 if len(calls) <= pinned_rounds else 0.5
        return t_to_depth(torch.full((1, 1, *aif.shape[-2:]), t), full["depth_range_m"])[0, 0]

    monkeypatch.setattr(fit_module, "_sweep_depth", sweep)
    return calls


@pytest.mark.parametrize(
    ("pinned_rounds", "widen", "margin"), [(1, 2, 2.0), (5, 2, 3.0), (1, 0, 1.0), (0, 2, 1.0)]
)
def test_a_pinned_sweep_widens_the_range(monkeypatch, pinned_rounds: int, widen: int, margin: float) -> None:
    """While the sweep puts most pixels at the near end, the margin grows by one spacing and it runs again,
    at most ``widen_margin`` times; the fit is then bounded by that range. (The sweep is replaced by one
    pinned for ``pinned_rounds`` calls: a real sweep pins only some real scenes, see range_coverage.)"""
    calls = pinned_sweep(monkeypatch, pinned_rounds, lambda cfg: cfg.margin)
    stack = synthetic_stack(16, psf="disc")
    cfg = FitConfig(scales=(1,), iterations=1, noise_reference_px=64, widen_margin=widen)
    result = fit_scene(stack, cfg, progress=False)
    near = 1.0 / (1.0 + margin * 0.2)  # FOCUS spans 1.0 .. 0.2 D: spacing 0.2 D; far is 1 km throughout
    assert result.depth_range_m == pytest.approx((near, 1000.0))
    assert calls == [1.0 + k for k in range(len(calls))] and len(calls) == 1 + int(margin - 1.0)
    calls.clear()
    assert fit_range_m(stack, cfg) == pytest.approx((near, 1000.0))


@pytest.mark.parametrize(
    ("pinned_rounds", "changes", "flags"),
    [
        (1, {}, [False, True]),
        (2, {}, [False, True, True]),
        (0, {}, [False]),
        (1, {"widen_margin": 0}, [False]),  # a fixed range: nothing widens, nothing changes
        (1, {"near_slice_when_pinned": False}, [False, False]),
    ],
)
def test_near_slice_sweep_only_where_the_sweep_is_pinned_near(
    monkeypatch, pinned_rounds: int, changes: dict, flags: list[bool]
) -> None:
    """near_slice_when_pinned (the default): the sweeps over ranges widened at the near end re-render the
    nearest slice."""
    calls = pinned_sweep(monkeypatch, pinned_rounds, lambda cfg: cfg.loss.sweep_relative_beyond_focus)
    stack = synthetic_stack(16, psf="disc")
    cfg = FitConfig(scales=(1,), iterations=1, noise_reference_px=64, **changes)
    result = fit_scene(stack, cfg, progress=False)
    assert calls == flags and result.sweep_relative_beyond_focus == flags[-1]


def test_near_slice_when_pinned_finds_a_plane_nearer_than_every_focus(monkeypatch) -> None:
    """A plane at 1.3 D (the nearest focus is 1.0 D, the range 1.2 D, 1.4 D widened). Its sweep answers
    about 1.08 D: the blind spot, which also keeps it from pinning, so the first sweep is reported pinned
    at the near end here (real scenes such as accuracy set A's dfd_indoor_009 pin with part of their
    pixels). Only the near-slice sweep over the widened range then finds the plane."""
    import focalstack.inference.fit as fit_module

    real, reports = fit_module.pinned_ends, []

    def pinned_once(*args):
        reports.append(real(*args))
        return (1.0, 0.0) if len(reports) == 1 else reports[-1]

    monkeypatch.setattr(fit_module, "pinned_ends", pinned_once)
    aif = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(1))
    stack = rendered_stack(aif, torch.full((40, 40), 1.0 / 1.3), 1.0, CAMERA, "disc")
    cfg = FitConfig(scales=(1,), iterations=0, noise_reference_px=64, psf="disc", widen_margin=1)
    found = {}
    for gate in (False, True):
        reports.clear()
        result = fit_scene(stack, dataclasses.replace(cfg, near_slice_when_pinned=gate), progress=False)
        assert reports[0] == (0.0, 0.0)  # the real first sweep does not pin the plane
        assert (
            1.0 / result.depth_range_m[0] == pytest.approx(1.4) and result.sweep_relative_beyond_focus == gate
        )
        found[gate] = (1.0 / result.depth_m[8:-8, 8:-8] - 1.3).abs().median().item()
    assert found[True] < 0.1 < 0.15 < found[False]  # diopters; the slice spacing is 0.2 D


def test_near_slice_when_pinned_leaves_other_scenes_as_they_were() -> None:
    stack = synthetic_stack(24, psf="disc")
    cfg = FitConfig(
        scales=(1,), iterations=2, noise_reference_px=64, psf="disc", near_slice_when_pinned=False
    )
    plain = fit_scene(stack, cfg, progress=False)
    gated = fit_scene(stack, dataclasses.replace(cfg, near_slice_when_pinned=True), progress=False)
    assert not gated.sweep_relative_beyond_focus and plain.depth_range_m == gated.depth_range_m
    torch.testing.assert_close(gated.depth_m, plain.depth_m, rtol=0, atol=0)


def test_pinned_fraction_counts_the_ends_that_can_grow() -> None:
    depth_range = torch.tensor([[0.5, 2.0]])  # 2 D .. 0.5 D
    depth = torch.tensor([[0.5, 0.5], [1.0, 2.0]])  # two at the near end, one at the far end
    assert pinned_fraction(depth, depth_range, candidates=5) == 0.5
    assert pinned_fraction(torch.full((2, 2), 2.0), depth_range, candidates=5) == 1.0
    # a far end already at 1 km cannot grow: pixels there do not count
    assert pinned_fraction(torch.full((2, 2), 1000.0), torch.tensor([[0.5, 1000.0]]), candidates=5) == 0.0


def test_noise_reference_does_not_depend_on_the_image_size() -> None:
    """The sweep's noise reference is a Monte-Carlo draw of a fixed size: small images get the same one."""
    cfg, colour, std = FitConfig(noise_reference_px=64), torch.tensor([0.3, 0.5, 0.7]), torch.tensor(0.02)
    costs = [
        _noise_costs(_scene_inputs(synthetic_stack(n), cfg, torch.device("cpu"))[0], cfg, colour, std)
        for n in (16, 40)
    ]
    assert costs[0].shape == (1, cfg.loss.sweep_candidates, 48, 48)
    torch.testing.assert_close(costs[0], costs[1])


def test_noise_aware_stacking_shrinks_the_noise_lean() -> None:
    """On a textureless noisy stack, plain focus stacking keeps the strongest noise in the AIF, which the
    sharp hypotheses re-render and the blurred ones smooth away: the sweep's error varies with the
    hypothesis by noise alone. The noise-aware AIF averages that noise away, so the lean is smaller."""
    colour, std = torch.tensor([0.3, 0.5, 0.7]), torch.tensor(0.03)
    spreads = []
    for aware in (False, True):
        cfg = FitConfig(noise_reference_px=64, noise_aware_aif=aware)
        inputs = _scene_inputs(synthetic_stack(32), cfg, torch.device("cpu"))[0]
        lean = _noise_costs(inputs, cfg, colour, std).mean(dim=(0, 2, 3))
        spreads.append(float(lean.max() - lean.min()))
    assert spreads[1] < 0.7 * spreads[0]


def test_residual_low_pass_only_on_noisy_stacks() -> None:
    """The sweep low-passes its residuals against sensor noise; on a noise-free stack that only loses
    detail, so it is turned off there, and the fit says which it used."""
    from focalstack.inference.fit import noise_gated

    cfg = FitConfig()
    clean = synthetic_stack(48).images
    noisy = (clean + 0.02 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert cfg.loss.sweep_residual_blur_px == 1.0
    assert noise_gated(cfg, clean).loss.sweep_residual_blur_px == 0.0
    assert noise_gated(cfg, noisy) is cfg
    assert noise_gated(FitConfig(residual_blur_min_noise=0.0), clean).loss.sweep_residual_blur_px == 1.0
    small = FitConfig(init="sweep", scales=(1,), iterations=1, noise_reference_px=64)
    noisy_stack = FocalStack(noisy, FOCUS, CAMERA, name="noisy")
    assert fit_scene(noisy_stack, small, progress=False).sweep_residual_blur_px == 1.0
    assert fit_scene(synthetic_stack(48), small, progress=False).sweep_residual_blur_px == 0.0


def test_psf_choice_renders_a_plainly_stacked_aif_without_low_pass(monkeypatch) -> None:
    """The PSFs differ most in fine detail, which the sweep's noise-aware AIF and residual low-pass
    remove; the choice keeps it, and the sweep still gets its own AIF (reusing the choice's costs only
    where its options are the choice's)."""
    import focalstack.losses.rendering as rendering
    from focalstack.inference.baselines import focus_stack_aif
    from focalstack.inference.fit import _resolve_psf

    clean = synthetic_stack(48, psf="disc").images
    noisy = (clean + 0.02 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    stack = FocalStack(noisy, FOCUS, CAMERA, name="noisy")
    plain = focus_stack_aif(noisy, noise_aware=False)
    aware = focus_stack_aif(noisy, noise_aware=True)
    assert not torch.equal(plain, aware)
    seen = []
    real = rendering.sweep_costs_per_psf

    def spy(inputs, aif, **kwargs):
        seen.append((aif, kwargs["loss"]))
        return real(inputs, aif, **kwargs)

    monkeypatch.setattr(rendering, "sweep_costs_per_psf", spy)
    cfg = FitConfig()  # noise-aware AIF, low-pass 1 px
    full = _scene_inputs(stack, cfg, torch.device("cpu"))[0]
    psf, (aif, costs) = _resolve_psf(stack, cfg, full)
    assert torch.equal(seen[0][0], plain[None]) and seen[0][1].sweep_residual_blur_px == 0.0
    assert torch.equal(aif, aware) and costs is None
    same = FitConfig(noise_aware_aif=False, loss=dataclasses.replace(cfg.loss, sweep_residual_blur_px=0.0))
    psf_same, (aif_same, costs_same) = _resolve_psf(stack, same, full)
    assert psf_same == psf and torch.equal(aif_same, plain) and costs_same.shape == (1, 32, 48, 48)


def test_incomplete_camera_needs_blur_scale_estimation() -> None:
    stack = synthetic_stack(16, camera=None)
    stack.meta["camera"] = {"focal_length_m": 0.05, "f_number": 2.0}
    with pytest.raises(ValueError, match="estimate_blur_scale"):
        fit_scene(stack, FitConfig(init="constant", iterations=1), progress=False)
    cam = resolve_camera(stack, estimate_blur_scale=True, nominal_span_sigma_px=2.0)
    assert (cam.focal_length_m, cam.f_number) == (0.05, 2.0)
    assert cam.sigma_px(min(FOCUS), max(FOCUS)) == pytest.approx(2.0)
    result = fit_scene(
        stack, FitConfig(init="constant", scales=(1,), iterations=2, estimate_blur_scale=True), progress=False
    )
    assert torch.isfinite(result.depth_m).all() and result.camera == cam
    stack.meta["camera"] = {}  # nothing known: a nominal lens shorter than the nearest focus distance
    assert resolve_camera(stack, True).focal_length_m < min(FOCUS)


def test_complete_camera_is_kept() -> None:
    assert resolve_camera(synthetic_stack(16), estimate_blur_scale=True) == CAMERA


def test_bad_inputs_raise() -> None:
    stack = synthetic_stack(16)
    with pytest.raises(ValueError, match="init_depth_m"):
        fit_scene(stack, FitConfig(init="constant"), init_depth_m=torch.ones(8, 8), progress=False)
    no_focus = FocalStack(stack.images, None, CAMERA, name="nofocus")
    with pytest.raises(ValueError, match="focus"):
        fit_scene(no_focus, FitConfig(init="constant"), progress=False)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"init": "median"},
        {"lr": 0.0},
        {"scales": ()},
        {"scales": (0,)},
        {"iterations": -1},
        {"aif_prior": "both"},
        {"step_growth": -1.0},
        {"step_growth": 5.0},
        {"noise_reference_px": 32},
        {"margin": -1.0},
        {"widen_margin": -1},
        {"pinned_fraction": 0.0},
        {"pinned_fraction": 1.5},
        {"residual_blur_min_noise": -0.1},
        {"refine": "occlusion"},
        {"refine": "layered", "loss": LossConfig(render_mode="layered")},
    ],
)
def test_bad_config_raises(kwargs) -> None:
    with pytest.raises(ValueError):
        FitConfig(**kwargs)


def test_loss_psf_alone_is_refused() -> None:
    # loss.psf is what fit resolves FitConfig.psf into; set alone it would be silently replaced.
    with pytest.raises(ValueError, match="FitConfig.psf"):
        FitConfig(loss=LossConfig(psf="disc"))
    assert FitConfig(psf="disc", loss=LossConfig(psf="disc")).psf == "disc"


def test_fit_command_writes_outputs(tmp_path: Path) -> None:
    from focalstack.cli.fit import FitCommand

    scenes = tmp_path / "scenes"
    synthetic_stack(16).save(scenes / "a")
    FocalStack(synthetic_stack(16).images, None, None, name="b").save(scenes / "b")  # no focus: fails
    cmd = FitCommand(
        path=scenes, out=tmp_path / "out", fit=FitConfig(init="constant", scales=(1,), iterations=2)
    )
    with pytest.raises(SystemExit, match="1 of 2 scenes failed"):
        cmd.run()
    out = tmp_path / "out" / "a"
    assert {"depth.npy", "aif.png", "depth_color.png", "prediction.json"} <= {p.name for p in out.iterdir()}
    info = json.loads((out / "prediction.json").read_text())
    assert info["method"] == "fit" and info["blur_scale"] == 1.0 and info["depth_units"] == "m"
    assert info["psf"] in ("disc", "gaussian") and info["fit_config"]["psf"] == "auto"
    assert info["depth_range_m"] == pytest.approx([1 / 1.2, 1000.0])  # FOCUS widened by one spacing
    assert info["sweep_residual_blur_px"] == 0.0  # a noise-free stack: no low-pass
    assert not (tmp_path / "out" / "b").exists()


def test_fit_command_single_scene_with_overrides(tmp_path: Path) -> None:
    from focalstack.cli.fit import FitCommand

    FocalStack(synthetic_stack(16).images, None, None, name="b").save(tmp_path / "b")  # no focus, no camera
    fit = FitConfig(init="constant", scales=(1,), iterations=2)
    with pytest.raises(SystemExit, match="focus"):
        FitCommand(path=tmp_path / "b", out=tmp_path / "out", fit=fit).run()
    FitCommand(path=tmp_path / "b", out=tmp_path / "out", fit=fit, focus=FOCUS).run()
    info = json.loads((tmp_path / "out" / "prediction.json").read_text())
    assert info["focus_distances_m"] == pytest.approx(FOCUS)
    assert info["fit_config"]["estimate_blur_scale"] is True  # switched on for the incomplete camera
    assert (tmp_path / "out" / "recon.png").is_file()  # re-rendered with the fitted nominal camera


def test_fit_command_parses_the_fit_options() -> None:
    import tyro

    from focalstack.cli.fit import FitCommand

    args = ["SCENE", "--fit.aif-prior", "joint", "--fit.psf", "disc", "--fit.loss.sweep-penalties", "None"]
    cmd = tyro.cli(
        FitCommand, args=[*args, "--fit.step-growth", "2", "--fit.margin", "3", "--fit.widen-margin", "0"]
    )
    assert (cmd.fit.aif_prior, cmd.fit.psf, cmd.fit.loss.sweep_penalties) == ("joint", "disc", None)
    assert (cmd.fit.step_growth, cmd.fit.margin, cmd.fit.widen_margin) == (2.0, 3.0, 0)
    assert tyro.cli(FitCommand, args=["SCENE"]).fit == FitConfig()
    layered = tyro.cli(FitCommand, args=["SCENE", "--fit.loss.render-mode", "layered"]).fit.loss
    assert (layered.render_mode, layered.layer_step_px) == ("layered", 0.5)
    near = tyro.cli(FitCommand, args=["SCENE", "--fit.loss.sweep-relative-beyond-focus"]).fit.loss
    assert near.sweep_relative_beyond_focus and not FitConfig().loss.sweep_relative_beyond_focus
    assert tyro.cli(FitCommand, args=["SCENE", "--fit.refine", "layered"]).fit.refine == "layered"
    assert FitConfig().near_slice_when_pinned
    off = tyro.cli(FitCommand, args=["SCENE", "--fit.no-near-slice-when-pinned"]).fit
    assert not off.near_slice_when_pinned
    assert FitConfig().retract_halos
    assert not tyro.cli(FitCommand, args=["SCENE", "--fit.no-retract-halos"]).fit.retract_halos
    with pytest.raises(SystemExit):
        tyro.cli(FitCommand, args=["SCENE", "--fit.aif-prior", "sometimes"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("render_mode", ["gather", "layered"])
def test_fit_on_cuda_matches_the_cpu(render_mode: str) -> None:
    """The whole fit (PSF choice, noise-corrected semi-global sweep, Adam) runs on the GPU."""
    stack = synthetic_stack(48, psf="disc")
    loss = dataclasses.replace(FitConfig().loss, render_mode=render_mode)
    cfg = FitConfig(scales=(2, 1), iterations=20, loss=loss)
    cpu = fit_scene(stack, cfg, progress=False)
    gpu = fit_scene(stack, cfg, progress=False, device="cuda")
    assert gpu.depth_m.device.type == "cpu" and gpu.psf == cpu.psf == "disc"
    assert diopter_error(gpu.depth_m, cpu.depth_m) < 0.02  # diopters; the scene spans 0.3 - 0.95
