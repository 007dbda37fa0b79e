"""Self-supervised losses: each term, the GT firewall, gradients, and agreement with slow references."""

from __future__ import annotations

import dataclasses

import kornia
import pytest
import torch

from focalstack.losses import (
    INPUT_KEYS,
    LossConfig,
    coarse_aif,
    edge_aware_smoothness,
    log_sharpness_loss,
    photometric_loss,
    self_supervised_losses,
    self_supervised_losses_detailed,
)
from focalstack.optics import depth_to_sigma_px, render_stack
from focalstack.utils.color import linear_to_srgb, srgb_to_linear


def _scene(B: int = 2, S: int = 3, H: int = 16, W: int = 16, dtype=torch.float32):
    """A batch rendered by the training renderer from a known AIF and depth, plus those truths."""
    g = torch.Generator().manual_seed(0)
    aif = torch.rand(B, 3, H, W, generator=g, dtype=dtype)
    depth = 1.0 + 3.0 * torch.rand(B, 1, H, W, generator=g, dtype=dtype)
    inputs = {
        "focus_m": torch.tensor([[1.0, 1.8, 3.5]], dtype=dtype).expand(B, S).contiguous(),
        "focal_length_m": torch.full((B,), 0.05, dtype=dtype),
        "f_number": torch.full((B,), 2.0, dtype=dtype),
        "pixel_size_m": torch.full((B,), 1e-4, dtype=dtype),
        "depth_range_m": torch.tensor([[0.8, 6.0]], dtype=dtype).expand(B, 2).contiguous(),
    }
    sigma = depth_to_sigma_px(
        depth, inputs["focus_m"], inputs["focal_length_m"], inputs["f_number"], inputs["pixel_size_m"]
    )
    inputs["stack"] = render_stack(aif, sigma, kernel_size=7)
    return inputs, {"aif": aif, "depth_m": depth}, sigma


def test_terms_and_total() -> None:
    inputs, outputs, _ = _scene()
    terms = self_supervised_losses(inputs, outputs, LossConfig())
    assert set(terms) == {"recon", "aif", "sharpness", "smooth", "total"}
    assert all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
    torch.testing.assert_close(terms["total"], sum(v for k, v in terms.items() if k != "total"))


def test_recon_vanishes_for_the_truth() -> None:
    inputs, outputs, _ = _scene()
    cfg = LossConfig()
    assert self_supervised_losses(inputs, outputs, cfg)["recon"] < 1e-3  # weight 1e3: raw < 1e-6
    wrong = {"aif": outputs["aif"], "depth_m": outputs["depth_m"].flip(-1)}
    assert self_supervised_losses(inputs, wrong, cfg)["recon"] > 1.0


def test_detailed_returns_the_render() -> None:
    inputs, outputs, sigma = _scene()
    res = self_supervised_losses_detailed(inputs, outputs, LossConfig())
    torch.testing.assert_close(res.render, inputs["stack"])
    torch.testing.assert_close(res.sigma_px, sigma)
    assert res.coarse_aif.shape == outputs["aif"].shape


def test_linear_light_rerenders_like_synthesis() -> None:
    """linear_light: the render is sRGB(blur(linear(AIF))); the truth then has zero reconstruction loss."""
    inputs, outputs, sigma = _scene()
    lin = render_stack(srgb_to_linear(outputs["aif"]), sigma, kernel_size=7)
    inputs = {**inputs, "stack": linear_to_srgb(lin)}
    cfg = LossConfig(linear_light=True)
    res = self_supervised_losses_detailed(inputs, outputs, cfg)
    torch.testing.assert_close(res.render, inputs["stack"])
    assert res.terms["recon"] < 1e-3
    # the sRGB-blurring (paper) renderer cannot explain linear-light blur of a high-contrast image
    assert self_supervised_losses(inputs, outputs, LossConfig())["recon"] > 10 * res.terms["recon"]
    aif = outputs["aif"].clone().requires_grad_()
    depth = outputs["depth_m"].clone().requires_grad_()
    self_supervised_losses(inputs, {"aif": aif, "depth_m": depth * 1.1}, cfg)["total"].backward()
    assert torch.isfinite(aif.grad).all() and torch.isfinite(depth.grad).all() and depth.grad.abs().sum() > 0


def test_levels_renderer_explains_blur_beyond_the_window() -> None:
    """render_mode "levels" (untruncated) re-renders blur of std 4 px; a 7 x 7 window cannot."""
    from focalstack.optics import render_stack

    inputs, outputs, sigma = _scene(H=32, W=32)
    big = 4.0 * sigma / sigma.amax()
    inputs = {**inputs, "stack": render_stack(outputs["aif"], big, mode="levels")}
    scale = (4.0 / sigma.amax()).item()  # blur_scale turns the scene's blur into `big`
    levels = self_supervised_losses(inputs, outputs, LossConfig(render_mode="levels"), blur_scale=scale)
    window = self_supervised_losses(inputs, outputs, LossConfig(), blur_scale=scale)
    assert levels["recon"] < 1e-3 < window["recon"]
    with pytest.raises(ValueError, match="levels"):
        LossConfig(render_mode="levels", psf="disc")


def test_weights_scale_terms() -> None:
    inputs, outputs, _ = _scene()
    base = self_supervised_losses(inputs, {**outputs, "depth_m": outputs["depth_m"] * 1.1}, LossConfig())
    cfg = LossConfig(recon_weight=2e3, aif_weight=0.0, sharpness_weight=3.0, smooth_weight=0.0)
    new = self_supervised_losses(inputs, {**outputs, "depth_m": outputs["depth_m"] * 1.1}, cfg)
    torch.testing.assert_close(new["recon"], 2 * base["recon"])
    torch.testing.assert_close(new["sharpness"], 3 * base["sharpness"])
    assert new["aif"] == 0 and new["smooth"] == 0


def test_blur_scale_equals_finer_pixel_pitch() -> None:
    inputs, outputs, _ = _scene()
    finer = {**inputs, "pixel_size_m": inputs["pixel_size_m"] / 1.5}
    a = self_supervised_losses(inputs, outputs, LossConfig(), blur_scale=torch.tensor([1.5, 1.5]))
    b = self_supervised_losses(finer, outputs, LossConfig())
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_per_item_blur_scale_broadcasts_over_slices_and_pixels() -> None:
    """A (B,) blur_scale scales each item's (S, H, W) blur by its own factor (one scene per item)."""
    inputs, outputs, sigma = _scene()
    scale = torch.tensor([1.5, 0.7], requires_grad=True)
    res = self_supervised_losses_detailed(inputs, outputs, LossConfig(), blur_scale=scale)
    torch.testing.assert_close(res.sigma_px, sigma * torch.tensor([1.5, 0.7]).reshape(2, 1, 1, 1))
    finer = {**inputs, "pixel_size_m": inputs["pixel_size_m"] / torch.tensor([1.5, 0.7])}
    ref = self_supervised_losses_detailed(finer, outputs, LossConfig())
    torch.testing.assert_close(res.render, ref.render)
    res.terms["total"].backward()
    assert scale.grad is not None and bool((scale.grad != 0).all())  # each factor gets its own gradient
    with pytest.raises(ValueError, match=r"blur_scale must be a scalar or a \(B,\)"):
        self_supervised_losses(inputs, outputs, LossConfig(), blur_scale=torch.ones(3))


@pytest.mark.parametrize("extra", ["targets", "depth_m", "aif", "gt_depth"])
def test_ground_truth_keys_are_rejected(extra: str) -> None:
    inputs, outputs, _ = _scene()
    with pytest.raises(ValueError, match="ground truth"):
        self_supervised_losses({**inputs, extra: torch.zeros(1)}, outputs, LossConfig())


def test_missing_or_extra_keys_rejected() -> None:
    inputs, outputs, _ = _scene()
    assert set(inputs) == INPUT_KEYS
    with pytest.raises(ValueError, match="missing"):
        self_supervised_losses({k: v for k, v in inputs.items() if k != "f_number"}, outputs, LossConfig())
    with pytest.raises(ValueError, match="outputs"):
        self_supervised_losses(inputs, {**outputs, "depth_gt": outputs["depth_m"]}, LossConfig())


@pytest.mark.parametrize(
    "key, bad",
    [("stack", torch.rand(2, 3, 16, 16)), ("focus_m", torch.rand(2, 4)), ("pixel_size_m", torch.rand(1))],
)
def test_bad_input_shapes_raise(key: str, bad: torch.Tensor) -> None:
    inputs, outputs, _ = _scene()
    with pytest.raises(ValueError, match="shape|must be"):
        self_supervised_losses({**inputs, key: bad}, outputs, LossConfig())


def test_bad_output_shape_raises() -> None:
    inputs, outputs, _ = _scene()
    with pytest.raises(ValueError, match="depth_m"):
        self_supervised_losses(inputs, {**outputs, "depth_m": outputs["depth_m"][:, 0]}, LossConfig())


@pytest.mark.parametrize(
    "field, value",
    [
        ("coarse_aif", "median"),
        ("coarse_temperature_px", 0.0),
        ("ssim_mix", 1.5),
        ("ssim_window", 4),
        ("ssim_range", 0.0),
        ("render_mode", "splat"),
        ("focus_prior_target", "oracle"),
        ("sweep_candidates", 2),
        ("sweep_noise_levels", 0),
    ],
)
def test_bad_config_raises(field: str, value) -> None:
    with pytest.raises(ValueError):
        LossConfig(**{field: value})


# ----------------------------------------------------------------------------- photometric


def test_photometric_zero_iff_equal_and_mix() -> None:
    a, b = torch.rand(2, 3, 3, 12, 12), torch.rand(2, 3, 3, 12, 12)
    assert photometric_loss(a, a) < 1e-6
    l1 = (a - b).abs().mean()
    torch.testing.assert_close(photometric_loss(a, b, ssim_mix=0.0), l1)
    dssim = 1 - kornia.metrics.ssim(a.flatten(0, 1), b.flatten(0, 1), 7).mean()
    torch.testing.assert_close(photometric_loss(a, b), 0.85 * dssim + 0.15 * l1)
    with pytest.raises(ValueError):
        photometric_loss(a, b[0])


def test_ssim_range_discounts_noise_in_flat_regions() -> None:
    # A flat image against itself plus sensor-level noise (std 0.02): standard SSIM (range 1) reports a
    # large dissimilarity; a larger range scales the constants so the same noise costs little, while a
    # real structural difference (an edge missing) still costs about as much as its L2 energy says.
    gen = torch.Generator().manual_seed(0)
    flat = torch.full((1, 1, 3, 32, 32), 0.5)
    noisy = flat + 0.02 * torch.randn(flat.shape, generator=gen)
    std, wide = photometric_loss(noisy, flat, 1.0), photometric_loss(noisy, flat, 1.0, ssim_range=10.0)
    assert std > 0.2 and wide < 0.01
    edge = flat.clone()
    edge[..., 16:] = 0.9
    torch.testing.assert_close(photometric_loss(edge, edge, 1.0, ssim_range=10.0), torch.tensor(0.0))
    assert photometric_loss(edge, flat, 1.0, ssim_range=10.0) > 20 * wide


# ----------------------------------------------------------------------------- coarse AIF


def test_hard_coarse_aif_matches_loop_reference() -> None:
    stack, sigma = torch.rand(2, 4, 3, 5, 6), torch.rand(2, 4, 5, 6)
    out = coarse_aif(stack, sigma, "hard")
    ref = torch.empty(2, 3, 5, 6)
    for b in range(2):
        for y in range(5):
            for x in range(6):
                ref[b, :, y, x] = stack[b, int(sigma[b, :, y, x].argmin()), :, y, x]
    torch.testing.assert_close(out, ref)


def test_soft_coarse_aif_tends_to_hard() -> None:
    stack, sigma = torch.rand(1, 3, 3, 8, 8), 3 * torch.rand(1, 3, 8, 8)
    hard = coarse_aif(stack, sigma, "hard")
    errors = [(coarse_aif(stack, sigma, "soft", t) - hard).abs().max() for t in (1.0, 0.1, 1e-4)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-5


def test_coarse_aif_bad_input() -> None:
    with pytest.raises(ValueError):
        coarse_aif(torch.rand(1, 3, 3, 8, 8), torch.rand(1, 2, 8, 8))
    with pytest.raises(ValueError):
        coarse_aif(torch.rand(1, 3, 3, 8, 8), torch.rand(1, 3, 8, 8), "median")


# ----------------------------------------------------------------------------- priors


def test_log_prior_prefers_sharper_images() -> None:
    sharp = torch.rand(1, 3, 32, 32)
    blurred = kornia.filters.gaussian_blur2d(sharp, 7, (1.5, 1.5))
    assert log_sharpness_loss(sharp) < log_sharpness_loss(blurred) < 0
    assert log_sharpness_loss(torch.full((1, 3, 8, 8), 0.3)).abs() < 1e-6


def test_smoothness_zero_for_constant_and_edge_aware() -> None:
    image = torch.zeros(1, 3, 8, 8)
    image[..., 4:] = 1.0  # an image edge between columns 3 and 4
    assert edge_aware_smoothness(torch.full((1, 1, 8, 8), 0.4), image) == 0
    step_at_edge, step_elsewhere = torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)
    step_at_edge[..., 4:] = 1.0
    step_elsewhere[..., 2:] = 1.0
    assert edge_aware_smoothness(step_at_edge, image) < edge_aware_smoothness(step_elsewhere, image)


def test_smoothness_matches_reference_and_sees_checkerboard() -> None:
    t, image = torch.rand(2, 1, 5, 7), torch.rand(2, 3, 5, 7)
    ref = 0.0
    for dim, n in ((-1, 7), (-2, 5)):
        a = t.narrow(dim, 1, n - 1) - t.narrow(dim, 0, n - 1)
        i = (image.narrow(dim, 1, n - 1) - image.narrow(dim, 0, n - 1)).abs().mean(1, keepdim=True)
        ref = ref + (a.abs() * torch.exp(-2.5 * i)).mean()
    torch.testing.assert_close(edge_aware_smoothness(t, image, 2.5), ref)
    checker = (torch.arange(8)[:, None] + torch.arange(8)).remainder(2).float()[None, None]
    assert edge_aware_smoothness(checker, torch.zeros(1, 3, 8, 8)) == 2.0


def test_smoothness_bad_input() -> None:
    with pytest.raises(ValueError):
        edge_aware_smoothness(torch.rand(1, 2, 8, 8), torch.rand(1, 3, 8, 8))


# ----------------------------------------------------------------------------- gradients


def test_gradcheck_float64_terms() -> None:
    g = torch.Generator().manual_seed(3)
    t = torch.rand(1, 1, 4, 5, dtype=torch.float64, generator=g, requires_grad=True)
    img = torch.rand(1, 3, 4, 5, dtype=torch.float64, generator=g, requires_grad=True)
    ref = torch.rand(1, 3, 4, 5, dtype=torch.float64, generator=g)
    stack = torch.rand(1, 3, 3, 4, 5, dtype=torch.float64, generator=g)
    sigma = torch.rand(1, 3, 4, 5, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: edge_aware_smoothness(x, ref), (t,))
    assert torch.autograd.gradcheck(log_sharpness_loss, (img,))
    assert torch.autograd.gradcheck(lambda x: photometric_loss(x[None], ref[None], window=3), (img,))
    assert torch.autograd.gradcheck(lambda s: coarse_aif(stack, s, "soft", 0.5), (sigma,))


def test_gradcheck_float64_total() -> None:
    inputs, outputs, _ = _scene(1, 3, 5, 5, dtype=torch.float64)
    # The smoothness guide image is detached on purpose, so it is left out of the AIF check.
    cfg = LossConfig(ssim_window=3, coarse_aif="soft", smooth_weight=0.0)
    # Away from the truth, so no |render - stack| of the L1 part sits at its kink.
    depth = (outputs["depth_m"] * 1.05).requires_grad_(True)
    aif = outputs["aif"].flip(-1).clamp(0.05, 0.95).requires_grad_(True)

    def total(d: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self_supervised_losses(inputs, {"aif": a, "depth_m": d}, cfg)["total"]

    assert torch.autograd.gradcheck(total, (depth, aif), atol=1e-4, fast_mode=True)


def _depth_grad(cfg: LossConfig, term: str) -> torch.Tensor | None:
    inputs, outputs, _ = _scene()
    depth = (outputs["depth_m"] * 1.2).requires_grad_(True)
    aif = outputs["aif"].clone().requires_grad_(True)
    value = self_supervised_losses(inputs, {"aif": aif, "depth_m": depth}, cfg)[term]
    return torch.autograd.grad(value, depth, allow_unused=True)[0]


def test_depth_gradient_through_recon_and_soft_coarse_aif() -> None:
    assert _depth_grad(LossConfig(), "recon").abs().sum() > 0
    assert _depth_grad(LossConfig(coarse_aif="soft"), "aif").abs().sum() > 0
    hard = _depth_grad(LossConfig(coarse_aif="hard"), "aif")
    assert hard is None or hard.abs().sum() == 0  # the paper's argmin: no gradient to depth


def test_config_is_a_plain_dataclass() -> None:
    cfg = LossConfig(sharpness_weight=10.0)
    assert dataclasses.asdict(cfg)["sharpness_weight"] == 10.0


def test_focus_prior_prefers_true_depth_and_is_opt_in():
    from focalstack.data.normalize import depth_to_t, working_range_m
    from focalstack.data.procedural import ProceduralConfig, procedural_scene
    from focalstack.losses.selfsup import focus_prior

    s = procedural_scene(ProceduralConfig(size=(64, 64)), torch.Generator().manual_seed(3))
    focus, rng = s.focus_m[None].float(), working_range_m(s.focus_m[None]).float()
    t_true = depth_to_t(s.depth_m[None, None].float(), rng)
    t_true.requires_grad_(True)
    at_truth = focus_prior(s.images[None], t_true, focus, rng)
    at_const = focus_prior(s.images[None], torch.full_like(t_true, 0.5), focus, rng)
    assert at_truth < 0.5 * at_const
    at_truth.backward()
    assert t_true.grad.abs().sum() > 0


def test_focus_prior_term_only_when_weighted() -> None:
    inputs, outputs, _ = _scene()
    assert "focus_prior" not in self_supervised_losses(inputs, outputs, LossConfig())
    terms = self_supervised_losses(inputs, outputs, LossConfig(focus_prior_weight=10.0))
    assert terms["focus_prior"] >= 0
    rest = sum(v for k, v in terms.items() if k != "total")
    torch.testing.assert_close(terms["total"], rest)


def test_focus_prior_sweep_target_pulls_towards_the_rendered_depth() -> None:
    """target "sweep": the prior is ~0 at the depth the stack was rendered with, large elsewhere."""
    inputs, outputs, _ = _scene(H=24, W=24)
    sweep = {"sweep_candidates": 48, "sweep_window_px": 0.0}
    cfg = LossConfig(focus_prior_weight=1.0, focus_prior_target="sweep", **sweep)
    at_truth = self_supervised_losses(inputs, outputs, cfg)["focus_prior"]
    far = {"aif": outputs["aif"], "depth_m": torch.full_like(outputs["depth_m"], 5.5)}
    assert at_truth < 0.3 * self_supervised_losses(inputs, far, cfg)["focus_prior"]
    with pytest.raises(ValueError, match="focus_prior_target"):
        LossConfig(focus_prior_target="oracle")
