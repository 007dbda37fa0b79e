"""Focal-stack synthesis: layered occlusion-aware model, per-pixel models, noise."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from focalstack.data.rgbd import RGBDSample
from focalstack.data.synth import (
    NoiseConfig,
    auto_num_layers,
    psf_kernel,
    scene_seed,
    synthesize_rgbd,
    synthesize_stack,
)
from focalstack.optics.camera import ThinLens
from focalstack.utils.color import linear_to_srgb, srgb_to_linear

CAM = ThinLens(focal_length_m=0.025, f_number=2.0, pixel_size_m=2e-5)


def _uniform_blur_reference(aif: torch.Tensor, sigma: float, psf: str) -> torch.Tensor:
    """Slow reference: 2-D convolution of linear light with mirrored borders."""
    k = psf_kernel(sigma, psf).float()
    r = k.shape[0] // 2
    lin = srgb_to_linear(aif)[:, None]
    return linear_to_srgb(F.conv2d(F.pad(lin, (r, r, r, r), mode="reflect"), k[None, None])[:, 0])


def _two_planes(H: int = 24, W: int = 32, near_m: float = 1.0, far_m: float = 5.0):
    """Left half near and white, right half far and black."""
    aif = torch.zeros(3, H, W)
    aif[:, :, : W // 2] = 1.0
    depth = torch.full((H, W), far_m)
    depth[:, : W // 2] = near_m
    return aif, depth


@pytest.mark.parametrize("psf", ["gaussian", "disc"])
def test_psf_kernel_normalised_with_paper_blur_scale(psf):
    for sigma in (0.0, 0.3, 1.0, 4.0):
        k = psf_kernel(sigma, psf)
        assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert float(k.sum()) == pytest.approx(1.0)
        assert torch.equal(k, k.flip(0)) and torch.equal(k, k.T)
    assert psf_kernel(0.0, psf).shape == (1, 1)
    # Per-axis variance is sigma^2 for both PSFs (disc radius = CoC radius = 2 sigma).
    k = psf_kernel(4.0, psf)
    x = torch.arange(k.shape[0], dtype=torch.float64) - k.shape[0] // 2
    std = float((k.sum(0) * x**2).sum().sqrt())
    assert std == pytest.approx(4.0, rel=0.02 if psf == "gaussian" else 0.05)


def test_psf_kernel_errors():
    with pytest.raises(ValueError, match="psf"):
        psf_kernel(1.0, "box")
    with pytest.raises(ValueError, match="sigma"):
        psf_kernel(-1.0, "disc")


@pytest.mark.parametrize("psf", ["gaussian", "disc"])
def test_in_focus_plane_stays_sharp(psf):
    aif = torch.rand(3, 16, 20)
    out = synthesize_stack(aif, torch.full((16, 20), 2.0), CAM, [2.0, 3.0], psf=psf)
    assert out.shape == (2, 3, 16, 20) and out.dtype == torch.float32
    assert (out[0] - aif).abs().max() < 1e-5  # sRGB -> linear -> sRGB round trip only
    assert (out[1] - aif).abs().max() > 0.05


@pytest.mark.parametrize("psf", ["gaussian", "disc"])
def test_constant_depth_equals_uniform_blur(psf):
    aif = torch.rand(3, 20, 24)
    focus = torch.tensor([1.0, 1.6, 4.0])
    out = synthesize_stack(aif, torch.full((20, 24), 1.4), CAM, focus, psf=psf)
    for i, f in enumerate(focus.tolist()):
        ref = _uniform_blur_reference(aif, CAM.sigma_px(1.4, f), psf)
        assert (out[i] - ref).abs().max() < 1e-4


def test_in_focus_region_of_two_depth_scene_is_exact():
    aif, depth = _two_planes()
    aif = aif * torch.rand(3, 1, 32)  # texture along x
    out = synthesize_stack(aif, depth, CAM, [5.0])[0]
    reach = psf_kernel(CAM.sigma_px(1.0, 5.0), "disc").shape[0] // 2
    far_side = slice(16 + reach + 1, 32)  # beyond the reach of the near plane's blur
    assert (out[:, :, far_side] - aif[:, :, far_side]).abs().max() < 1e-5


def test_blurred_foreground_spills_over_background_but_not_the_reverse():
    aif, depth = _two_planes()
    # Focused far: the near (white) half is blurred and spills over the sharp black background.
    far = synthesize_stack(aif, depth, CAM, [5.0])[0]
    per_pixel = synthesize_stack(aif, depth, CAM, [5.0], model="gather", kernel_size=7)[0]
    assert far[:, :, 16].min() > 0.1  # first background column is lit by the foreground's blur
    assert per_pixel[:, :, 16:].abs().max() < 1e-4  # a per-pixel model keeps the sharp background black
    # Over black, the blurred white edge is the disc's coverage: symmetric about the edge and smooth
    # (the hidden background behind the foreground's edge is filled, not replaced by white).
    profile = srgb_to_linear(far[0, 12])
    assert float(profile[15] + profile[16]) == pytest.approx(1.0, abs=0.02)
    assert (profile.diff() <= 1e-6).all() and float(profile.diff().abs().max()) < 0.15
    # Focused near: the sharp white foreground hides the blurred background entirely.
    near = synthesize_stack(aif, depth, CAM, [1.0])[0]
    assert (near[:, :, :16] - 1.0).abs().max() < 1e-5
    assert (near[:, :, 16:]).abs().max() < 1e-5  # the black background blurred alone stays black


def test_fill_hidden_off_keeps_the_foreground_colour_inside_its_edge():
    aif, depth = _two_planes()
    out = synthesize_stack(aif, depth, CAM, [5.0], fill_hidden=False)[0]
    assert (out[:, :, :16] - 1.0).abs().max() < 1e-5  # normalisation fills the hole with white
    assert out[:, :, 16].min() > 0.1  # the spill over the background is the same


def test_continuous_surface_hides_what_lies_behind_it():
    """A slanted uniform surface cut into many layers must not show the farther plane between them."""
    H, W = 16, 48
    aif = torch.zeros(3, H, W)
    aif[0, :, :16] = 1.0  # far red plane on the left
    aif[1, :, 16:] = 1.0  # nearer green slanted plane on the right
    depth = torch.full((H, W), 3.0)
    depth[:, 16:] = 1.0 / torch.linspace(1.0, 1.6, W - 16).expand(H, -1)
    out = synthesize_stack(aif, depth, CAM, [1.0 / 1.3], psf="gaussian")[0]
    assert auto_num_layers(depth, CAM, torch.tensor([1.0 / 1.3])) > 10
    # The green surface's own blur reaches a few pixels; beyond that it is pure green.
    sigma = max(CAM.sigma_px(1.0, 1 / 1.3), CAM.sigma_px(1 / 1.6, 1 / 1.3))
    reach = psf_kernel(sigma, "gaussian").shape[0] // 2
    assert out[0, :, 16 + reach + 1 :].abs().max() < 1e-4
    assert (out[1, :, 16 + reach + 1 :] - 1.0).abs().max() < 1e-4


def test_layered_matches_per_pixel_model_without_occlusion_edges():
    H, W = 24, 24
    aif = torch.rand(3, H, W)
    cam = ThinLens(0.025, 8.0, 2e-5)  # small blur (sigma < 1.2 px) so a 7x7 gather window suffices
    diopter = torch.linspace(0.4, 1.0, W).expand(H, W)
    depth = 1.0 / diopter
    layered = synthesize_stack(aif, depth, cam, [1.2, 2.0], psf="gaussian")
    gather = synthesize_stack(aif, depth, cam, [1.2, 2.0], psf="gaussian", model="gather", kernel_size=7)
    assert (layered - gather).abs().mean() < 0.01


def test_linear_light_blur_brightens_edges():
    aif, _ = _two_planes()
    depth = torch.full((24, 32), 5.0)
    lin = synthesize_stack(aif, depth, CAM, [1.0], psf="gaussian")[0]
    srgb = synthesize_stack(aif, depth, CAM, [1.0], psf="gaussian", linear_light=False)[0]
    # Across the edge the mix of white and black is 50 % in linear light, i.e. brighter once encoded.
    half_grey = float(linear_to_srgb(torch.tensor(0.5)))
    assert float(lin[0, 12, 15:17].mean()) == pytest.approx(half_grey, abs=0.05)
    assert float(srgb[0, 12, 15:17].mean()) == pytest.approx(0.5, abs=0.05)


def test_auto_num_layers_bounds_the_coc_step():
    depth = torch.linspace(0.5, 10.0, 64).reshape(8, 8)
    focus = torch.tensor([1.0, 2.0, 4.0])
    n = auto_num_layers(depth, CAM, focus, max_step_px=0.5)
    edges = torch.linspace(1 / 10.0, 1 / 0.5, n + 1, dtype=torch.float64)
    step = CAM.coc_radius_px(1 / edges[:, None], focus.double()[None]).diff(dim=0).abs().max()
    assert step <= 0.5 + 1e-9
    assert auto_num_layers(depth, ThinLens(0.025, 1.0, 2e-5), focus) > 1.8 * n  # twice the aperture
    assert auto_num_layers(torch.full((4, 4), 2.0), CAM, focus) == 1


def test_noise_is_reproducible_and_has_the_configured_level():
    aif = torch.full((3, 64, 64), 0.5)
    depth = torch.full((64, 64), 2.0)
    noise = NoiseConfig(shot=1e-3, read=2e-3)
    a = synthesize_stack(aif, depth, CAM, [2.0], noise=noise, generator=torch.Generator().manual_seed(1))
    b = synthesize_stack(aif, depth, CAM, [2.0], noise=noise, generator=torch.Generator().manual_seed(1))
    c = synthesize_stack(aif, depth, CAM, [2.0], noise=noise, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    lin = srgb_to_linear(a)
    x = float(srgb_to_linear(torch.tensor(0.5)))
    assert float(lin.std()) == pytest.approx((1e-3 * x + 2e-3**2) ** 0.5, rel=0.1)
    assert float(lin.mean()) == pytest.approx(x, abs=2e-3)


def test_quantisation():
    aif = torch.rand(3, 8, 8)
    out = synthesize_stack(aif, torch.full((8, 8), 3.0), CAM, [1.0], noise=NoiseConfig(quantize_bits=8))
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-4)
    clean = synthesize_stack(aif, torch.full((8, 8), 3.0), CAM, [1.0])
    assert (out - clean).abs().max() <= 0.5 / 255 + 1e-6


def test_noise_config_validation():
    with pytest.raises(ValueError, match="shot"):
        NoiseConfig(shot=-1.0)
    with pytest.raises(ValueError, match="read"):
        NoiseConfig(read=float("nan"))
    with pytest.raises(ValueError, match="quantize_bits"):
        NoiseConfig(quantize_bits=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"aif": torch.rand(4, 8, 8)}, r"\(3, H, W\)"),
        ({"depth_m": torch.ones(8, 9)}, "depth_m must be"),
        ({"depth_m": torch.zeros(8, 8)}, "> 0 metres"),
        ({"depth_m": torch.full((8, 8), float("nan"))}, "> 0 metres"),
        ({"aif": torch.full((3, 8, 8), float("nan"))}, "NaN"),
        ({"focus_m": [0.01]}, "focal length"),
        ({"focus_m": []}, "S >= 1"),
        ({"camera": None}, "ThinLens"),
        ({"model": "magic"}, "model"),
        ({"psf": "box"}, "psf"),
        ({"num_layers": 0}, "num_layers"),
        ({"max_layer_step_px": 0.0}, "max_layer_step_px"),
    ],
)
def test_bad_input_raises(kwargs, match):
    args = {"aif": torch.rand(3, 8, 8), "depth_m": torch.ones(8, 8), "camera": CAM, "focus_m": [1.0, 2.0]}
    args.update(kwargs)
    positional = [args.pop(k) for k in ("aif", "depth_m", "camera", "focus_m")]
    with pytest.raises(ValueError, match=match):
        synthesize_stack(*positional, **args)


def _rgbd_sample(name: str = "s") -> RGBDSample:
    rgb = torch.rand(3, 12, 16, generator=torch.Generator().manual_seed(0))
    depth = torch.full((12, 16), 1.0)
    depth[:, 8:] = 3.0
    depth[0:3, 0:3] = 0.0  # a sensor hole
    return RGBDSample(name, rgb, depth, CAM, [1.0, 3.0], {"dataset": "test"})


def test_synthesize_rgbd_keeps_ground_truth_holes_and_renders_the_filled_depth():
    stack = synthesize_rgbd(_rgbd_sample(), model="gather", psf="gaussian")
    assert stack.images.shape == (2, 3, 12, 16) and stack.name == "s"
    assert torch.equal(stack.aif, _rgbd_sample().rgb) and stack.depth_m[0:3, 0:3].eq(0).all()
    assert stack.meta["rgbd"]["dataset"] == "test" and stack.meta["synth"]["model"] == "gather"
    assert stack.meta["focus_source"] == "dataset"
    # The hole is rendered at its farthest neighbour's depth (3 m would be wrong only at the corner).
    sample = _rgbd_sample()
    filled = sample.depth_m.clone()
    filled[0:3, 0:3] = 1.0
    ref = synthesize_stack(sample.rgb, filled, CAM, [1.0, 3.0], model="gather", psf="gaussian")
    assert torch.equal(stack.images, ref)


def test_synthesize_rgbd_overrides_resize_and_seeds_by_name():
    noise = NoiseConfig(read=0.01)
    a = synthesize_rgbd(_rgbd_sample("a"), noise=noise, seed=3, focus_m=[1.2, 2.0], scale=0.5)
    assert a.images.shape == (2, 3, 6, 8) and a.focus_m.tolist() == [1.2, 2.0]
    assert a.camera.pixel_size_m == pytest.approx(2 * CAM.pixel_size_m) and a.meta["focus_source"] == "given"
    assert a.meta["synth"]["scene_seed"] == scene_seed(3, "a") and a.meta["resolution"]["size"] == [6, 8]
    again = synthesize_rgbd(_rgbd_sample("a"), noise=noise, seed=3, focus_m=[1.2, 2.0], scale=0.5)
    other = synthesize_rgbd(_rgbd_sample("b"), noise=noise, seed=3, focus_m=[1.2, 2.0], scale=0.5)
    assert torch.equal(a.images, again.images) and not torch.equal(a.images, other.images)
    cropped = synthesize_rgbd(_rgbd_sample(), crop_multiple=8)
    assert cropped.size == (8, 16) and cropped.depth_m.shape == (8, 16)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": 0.0}, "scale"),
        ({"crop_multiple": 0}, "crop_multiple"),
        ({"crop_multiple": 32}, "crop multiple"),
    ],
)
def test_synthesize_rgbd_bad_input_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthesize_rgbd(_rgbd_sample(), **kwargs)
    bare = RGBDSample("x", torch.zeros(3, 4, 4), torch.ones(4, 4))
    with pytest.raises(ValueError, match="no camera"):
        synthesize_rgbd(bare, focus_m=[1.0, 2.0])
    with pytest.raises(ValueError, match="no focus"):
        synthesize_rgbd(bare, camera=CAM)
