"""Focal-stack synthesis from an all-in-focus image and a depth map (data generation, no gradients).

Three forward models:

- ``"layered"``: occlusion-aware compositing. Depth is cut into fronto-parallel layers (uniform in
  diopters); each layer is blurred with its own uniform PSF and composited far to near with the
  over operator, so a blurred foreground spills over the background behind it, as real lenses do.
- ``"gather"`` / ``"scatter"``: per-pixel blur through :func:`focalstack.optics.render_stack`, the
  training renderer (``"scatter"``, Gaussian, kernel 7 is the paper's generator).

:func:`synthesize_rgbd` is the one path from an RGB-D sample (:mod:`focalstack.data.rgbd`) to a
:class:`~focalstack.data.stack.FocalStack`; ``focalstack synth`` and ``focalstack convert nyu|dfd-indoor``
both use it, so equal options and seed give equal stacks.

Blur sizes come from :class:`focalstack.optics.ThinLens` only. By default the blur happens in linear
light (:mod:`focalstack.utils.color`); inputs and outputs are sRGB values in [0, 1].
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from focalstack.data.rgbd import RGBDSample, fill_depth_holes
from focalstack.data.stack import FocalStack
from focalstack.optics.camera import ThinLens
from focalstack.optics.render import render_stack
from focalstack.utils.color import linear_to_srgb, srgb_to_linear

Model = Literal["layered", "gather", "scatter"]
Psf = Literal["gaussian", "disc"]

#: Layer count cap of the automatic choice (cost grows with the number of non-empty layers).
MAX_LAYERS = 512
# Gaussian windows reach this many standard deviations (mass outside < 1e-3): no truncation saturation.
_GAUSS_HALF_WIDTH = 4.0
# Mirror (without repeating the edge pixel) at window borders; see _blur.
_BORDER = cv2.BORDER_REFLECT_101


@dataclass(frozen=True)
class NoiseConfig:
    """Sensor noise added to synthetic slices (linear light, before the sRGB encoding).

    Attributes:
        shot: shot-noise gain: a linear value x gets noise of variance ``shot * x`` (the Gaussian
            approximation of ``shot * Poisson(x / shot)``); e.g. 1e-3 is a full well of 1000 photons.
        read: standard deviation of additive Gaussian read noise, linear units; 0 disables it.
        quantize_bits: round the sRGB result to this many bits (e.g. 8 as in JPEG/PNG files), or None.
    """

    shot: float = 0.0
    read: float = 0.0
    quantize_bits: int | None = None

    def __post_init__(self) -> None:
        for name in ("shot", "read"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"NoiseConfig.{name} must be a finite number >= 0, got {v!r}")
        if self.quantize_bits is not None and not (
            isinstance(self.quantize_bits, int) and 1 <= self.quantize_bits <= 16
        ):
            raise ValueError(f"NoiseConfig.quantize_bits must be None or 1..16, got {self.quantize_bits!r}")


def psf_kernel(sigma_px: float, psf: Psf) -> torch.Tensor:
    """A normalised 2-D PSF for a uniform blur.

    Args:
        sigma_px: Gaussian standard deviation in pixels (>= 0); the disc has radius ``2 * sigma_px``
            (the CoC radius), which has the same per-axis standard deviation.
        psf: ``"gaussian"`` (window of +-4 sigma) or ``"disc"`` (anti-aliased edge: a pixel's weight
            ramps linearly from 1 to 0 as its centre goes from ``r - 0.5`` to ``r + 0.5``).

    Returns:
        (K, K) float64 kernel, K odd, summing to 1; (1, 1) for no blur.
    """
    if not (math.isfinite(sigma_px) and sigma_px >= 0):
        raise ValueError(f"sigma_px must be finite and >= 0, got {sigma_px}")
    if psf == "gaussian":
        g = _gaussian_1d(sigma_px)
        return torch.from_numpy(np.outer(g, g))
    if psf == "disc":
        return torch.from_numpy(_disc_2d(2.0 * sigma_px))
    raise ValueError(f"psf must be 'gaussian' or 'disc', got {psf!r}")


def _gaussian_1d(sigma: float) -> np.ndarray:
    half = math.ceil(_GAUSS_HALF_WIDTH * sigma)
    if half == 0:
        return np.ones(1)
    x = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _disc_2d(radius: float) -> np.ndarray:
    half = math.ceil(radius + 0.5) - 1 if radius > 0 else 0  # taps at distance >= r + 0.5 weigh 0
    x = np.arange(-half, half + 1, dtype=np.float64)
    w = np.clip(radius + 0.5 - np.hypot(x[:, None], x[None, :]), 0.0, 1.0)
    return w / w.sum()


def _taps(sigma: float, psf: Psf) -> np.ndarray:
    """Filter taps for :func:`_blur`: 1-D (separable Gaussian) or 2-D (disc), float32."""
    return (_gaussian_1d(sigma) if psf == "gaussian" else _disc_2d(2.0 * sigma)).astype(np.float32)


def _blur(img: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Uniform blur of an (h, w, C) float32 array (C <= 4) with OpenCV's SIMD filters.

    ``taps`` is a 1-D separable kernel (applied along both axes) or a 2-D kernel. Borders are
    mirrored: at the image border the scene plausibly continues; inside the image, callers pass
    windows whose margins are zero, which mirror to zero.
    """
    if taps.size == 1:
        return img
    if taps.ndim == 1:
        return cv2.sepFilter2D(img, -1, taps, taps, borderType=_BORDER)
    return cv2.filter2D(img, -1, taps, borderType=_BORDER)


def _check_inputs(aif: torch.Tensor, depth_m: torch.Tensor, camera: ThinLens, focus_m: torch.Tensor) -> None:
    if aif.dim() != 3 or aif.shape[0] != 3 or not aif.is_floating_point():
        raise ValueError(f"aif must be a float (3, H, W) sRGB image, got {aif.dtype} {tuple(aif.shape)}")
    if depth_m.shape != aif.shape[1:]:
        raise ValueError(f"depth_m must be (H, W) = {tuple(aif.shape[1:])}, got {tuple(depth_m.shape)}")
    if not torch.isfinite(aif).all():
        raise ValueError("aif contains NaN or infinite values")
    if not torch.isfinite(depth_m).all() or (depth_m <= 0).any():
        raise ValueError(
            "depth_m must be finite and > 0 metres everywhere (fill invalid pixels first, e.g. with "
            "focalstack.data.rgbd.fill_depth_holes)"
        )
    if not isinstance(camera, ThinLens):
        raise ValueError(f"camera must be a ThinLens, got {type(camera).__name__}")
    if focus_m.dim() != 1 or focus_m.numel() < 1:
        raise ValueError(f"focus_m must be (S,) with S >= 1, got {tuple(focus_m.shape)}")
    if not torch.isfinite(focus_m).all() or (focus_m <= camera.focal_length_m).any():
        raise ValueError(
            f"focus distances must be finite and exceed the focal length {camera.focal_length_m} m, "
            f"got {focus_m.tolist()}"
        )


def auto_num_layers(
    depth_m: torch.Tensor, camera: ThinLens, focus_m: torch.Tensor, max_step_px: float = 0.5
) -> int:
    """Number of diopter-uniform layers whose CoC radius step is below ``max_step_px`` in every slice.

    Args:
        depth_m: (H, W) depth in metres (> 0).
        camera: the camera.
        focus_m: (S,) focus distances in metres.
        max_step_px: largest CoC-radius change between adjacent layers, in pixels.

    Returns:
        Layer count in [1, MAX_LAYERS].
    """
    d_lo, d_hi = 1.0 / float(depth_m.max()), 1.0 / float(depth_m.min())  # diopters
    if d_hi - d_lo <= 0:
        return 1
    # The CoC radius is |D - D_focus| times a per-slice constant, so its total variation over the
    # scene's diopter range, divided by n, is the radius step between n uniform layers.
    grid = torch.linspace(d_lo, d_hi, 257, dtype=torch.float64)
    radius = camera.coc_radius_px(1.0 / grid[None, :], focus_m.to(torch.float64)[:, None])
    variation = float(radius.diff(dim=1).abs().sum(dim=1).max())
    return int(min(MAX_LAYERS, max(1, math.ceil(variation / max_step_px))))


def _extend_behind(rgba: np.ndarray, index: np.ndarray, layer: int, reach: int) -> np.ndarray:
    """A layer's premultiplied RGBA content, extended behind the nearer layers next to it.

    A layer's pixels next to a nearer layer are partly visible through that layer's blurred edge
    (the lens sees around it). Without an extension, those places would be holes, filled after
    normalisation by the nearer layer's own colour: a hard step inside a blurred edge. The hidden
    content (opaque, within ``reach`` pixels) is guessed from the window around each pixel: the
    layer's own mean colour, weighted by twice its share of the window (1 along a straight edge),
    and the mean colour of everything at or behind the layer for the rest, so that thin or stray
    layers (slices of slanted surfaces, noisy depth at object borders) add no visible patches.

    Args:
        rgba: (h, w, 4) linear RGB with alpha channel 1 (a window of the image).
        index: (h, w) layer index of every pixel (larger is nearer).
        layer: the layer's index.
        reach: half-width of the extension band and of the averaging window, in pixels.

    Returns:
        (h, w, 4) float32 premultiplied colour and alpha of the extended layer.
    """
    own = index == layer
    content = rgba * own[..., None].astype(np.float32)
    if reach < 1:
        return content
    k = 2 * reach + 1
    behind = rgba * (index <= layer)[..., None].astype(np.float32)
    own_sum = cv2.boxFilter(content, -1, (k, k), normalize=False, borderType=_BORDER)
    behind_sum = cv2.boxFilter(behind, -1, (k, k), normalize=False, borderType=_BORDER)
    weight = np.minimum(1.0, own_sum[..., 3:4] * np.float32(2.0 / (k * k)))
    colour = weight * own_sum / np.maximum(own_sum[..., 3:4], 1e-6)
    colour += (1.0 - weight) * behind_sum / np.maximum(behind_sum[..., 3:4], 1e-6)  # alpha 1 if any
    return np.where((index > layer)[..., None], colour, content)


def _layered(
    lin: torch.Tensor,
    depth_m: torch.Tensor,
    camera: ThinLens,
    focus_m: torch.Tensor,
    psf: Psf,
    num_layers: int,
    fill_hidden: bool,
) -> torch.Tensor:
    """Occlusion-aware layered rendering of linear (3, H, W) ``lin``; returns (S, 3, H, W) on the CPU."""
    H, W = depth_m.shape
    diopter = (1.0 / depth_m.to("cpu", torch.float64)).numpy()
    d_lo, d_hi = float(diopter.min()), float(diopter.max())
    if d_hi > d_lo and num_layers > 1:
        index = np.minimum(((diopter - d_lo) / (d_hi - d_lo) * num_layers).astype(np.int64), num_layers - 1)
    else:
        index = np.zeros((H, W), dtype=np.int64)
    counts = np.bincount(index.ravel(), minlength=num_layers)
    layers = np.flatnonzero(counts)  # ascending diopter: far to near, the compositing order
    # Each layer is blurred at its pixels' mean diopter, so a fronto-parallel plane is exact.
    sums = np.bincount(index.ravel(), weights=diopter.ravel(), minlength=num_layers)
    mean_diopter = sums[layers] / counts[layers]
    sigmas = camera.sigma_px(
        torch.from_numpy(1.0 / mean_diopter)[:, None], focus_m.to("cpu", torch.float64)[None, :]
    ).tolist()  # (L, S) Gaussian std in pixels

    rgba = np.ones((H, W, 4), dtype=np.float32)
    rgba[..., :3] = lin.to("cpu", torch.float32).permute(1, 2, 0).numpy()
    taps = [[_taps(s, psf) for s in layer_sigmas] for layer_sigmas in sigmas]
    # A layer must extend behind nearer layers as far as their blur reaches (0 for the nearest).
    halves = [max(t.shape[0] // 2 for t in layer_taps) for layer_taps in taps]
    reaches = np.maximum.accumulate(halves[::-1])[::-1].tolist()[1:] + [0]
    reaches = reaches if fill_hidden else [0] * len(reaches)
    acc = np.zeros((focus_m.numel(), H, W, 4), dtype=np.float32)
    for layer, layer_taps, half, reach in zip(layers, taps, halves, reaches):
        mask = index == layer
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        # The extended layer reaches ``reach`` past its pixels, its blur ``half`` further; it is zero
        # outside that box, so blurring only the box is exact.
        grow = reach + half
        y0, y1 = max(0, rows[0] - grow), min(H, rows[-1] + grow + 1)
        x0, x1 = max(0, cols[0] - grow), min(W, cols[-1] + grow + 1)
        content = _extend_behind(rgba[y0:y1, x0:x1], index[y0:y1, x0:x1], layer, reach)
        for i, t in enumerate(layer_taps):
            blurred = _blur(content, t)
            region = acc[i, y0:y1, x0:x1]  # the over operator, in place
            region *= 1.0 - blurred[..., 3:4]
            region += blurred
    # Every pixel is covered once the layers are composited; normalising guards against rounding.
    out = acc[..., :3] / np.maximum(acc[..., 3:4], 1e-6)
    return torch.from_numpy(out).permute(0, 3, 1, 2).clamp(0.0, 1.0)


def _add_noise(lin: torch.Tensor, noise: NoiseConfig, generator: torch.Generator | None) -> torch.Tensor:
    # Gaussian approximation of Poisson shot noise (variance shot * x) plus read noise: one draw.
    std = torch.sqrt(noise.shot * lin.clamp_min(0.0) + noise.read**2)
    n = torch.randn(lin.shape, generator=generator, dtype=lin.dtype, device=lin.device)
    return (lin + std * n).clamp(0.0, 1.0)


def synthesize_stack(
    aif: torch.Tensor,
    depth_m: torch.Tensor,
    camera: ThinLens,
    focus_m: torch.Tensor | list[float],
    *,
    model: Model = "layered",
    psf: Psf = "disc",
    num_layers: int | None = None,
    max_layer_step_px: float = 0.5,
    fill_hidden: bool = True,
    kernel_size: int | None = None,
    linear_light: bool = True,
    noise: NoiseConfig | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Render a focal stack of a scene.

    Args:
        aif: (3, H, W) all-in-focus image, sRGB values in [0, 1].
        depth_m: (H, W) depth in metres, > 0 everywhere (fill sensor holes first).
        camera: the thin-lens camera; its pixel pitch refers to this resolution.
        focus_m: (S,) focus distances in metres.
        model: ``"layered"`` (occlusion-aware, OpenCV on the CPU), ``"gather"`` or ``"scatter"``
            (per-pixel, :func:`focalstack.optics.render_stack`).
        psf: ``"gaussian"`` (std sigma) or ``"disc"`` (radius = CoC radius = 2 sigma).
        num_layers: layered model only; None picks enough layers that the CoC radius changes by at
            most ``max_layer_step_px`` between adjacent layers (:func:`auto_num_layers`).
        max_layer_step_px: see ``num_layers``.
        fill_hidden: layered model only: extend each layer behind nearer ones, so a blurred
            foreground edge shows the background behind it rather than a hard step of its own colour.
            Turn it off for noisy sensor depth, whose speckled object borders it turns into blotches.
        kernel_size: gather/scatter only: the renderer's window (None: the renderer's choice).
        linear_light: blur linear-light values (real optics) rather than sRGB values.
        noise: sensor noise, or None for a clean stack.
        generator: random source of the noise (deterministic given its seed).

    Returns:
        (S, 3, H, W) float32 sRGB values in [0, 1], on ``aif``'s device.

    Raises:
        ValueError: bad shapes, non-positive depth, focus at or inside the focal length, unknown
            model/psf, or a bad layer setting.
    """
    focus_m = torch.as_tensor(focus_m, dtype=torch.float64).flatten()
    _check_inputs(aif, depth_m, camera, focus_m)
    if psf not in ("gaussian", "disc"):
        raise ValueError(f"psf must be 'gaussian' or 'disc', got {psf!r}")
    if model not in ("layered", "gather", "scatter"):
        raise ValueError(f"model must be 'layered', 'gather' or 'scatter', got {model!r}")
    if num_layers is not None and not (isinstance(num_layers, int) and num_layers >= 1):
        raise ValueError(f"num_layers must be an integer >= 1, got {num_layers!r}")
    if not max_layer_step_px > 0:
        raise ValueError(f"max_layer_step_px must be > 0, got {max_layer_step_px}")

    img = srgb_to_linear(aif) if linear_light else aif.clamp(0.0, 1.0)
    if model == "layered":
        n = num_layers or auto_num_layers(depth_m, camera, focus_m, max_layer_step_px)
        out = _layered(img, depth_m, camera, focus_m, psf, n, fill_hidden).to(aif.device)
    else:
        sigma = camera.sigma_px(depth_m.to(torch.float64)[None], focus_m[:, None, None].to(depth_m.device))
        out = render_stack(
            img[None].float(), sigma[None].float(), kernel_size=kernel_size, mode=model, psf=psf
        )[0].clamp(0.0, 1.0)
    if linear_light or (noise is not None and noise.shot + noise.read > 0):
        lin = out if linear_light else srgb_to_linear(out)
        if noise is not None and noise.shot + noise.read > 0:
            lin = _add_noise(lin, noise, generator)
        out = linear_to_srgb(lin)
    if noise is not None and noise.quantize_bits is not None:
        levels = 2**noise.quantize_bits - 1
        out = torch.round(out * levels) / levels
    return out.float()


def scene_seed(seed: int, key: str) -> int:
    """A 63-bit seed for one scene, mixed from a run seed and the scene's name.

    Depending on the name rather than the position keeps a scene's noise the same whatever subset or
    order of scenes a run renders.
    """
    state = np.random.SeedSequence([seed, zlib.crc32(key.encode())]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def _resize_rgbd(
    rgb: torch.Tensor, depth_m: torch.Tensor, scale: float, multiple: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize by ``scale`` (antialiased bilinear; nearest for depth, keeping 0 = invalid), then crop
    from the top-left corner to multiples of ``multiple`` pixels."""
    if scale != 1.0:
        H, W = rgb.shape[-2:]
        size = (max(1, round(H * scale)), max(1, round(W * scale)))
        rgb = F.interpolate(rgb[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
        rgb = rgb.clamp(0.0, 1.0)
        depth_m = F.interpolate(depth_m[None, None], size=size, mode="nearest-exact")[0, 0]
    h, w = rgb.shape[-2] // multiple * multiple, rgb.shape[-1] // multiple * multiple
    if h == 0 or w == 0:
        raise ValueError(
            f"image of {rgb.shape[-2]}x{rgb.shape[-1]} px is smaller than the crop multiple {multiple}"
        )
    return rgb[:, :h, :w], depth_m[:h, :w]


def synthesize_rgbd(
    sample: RGBDSample,
    *,
    camera: ThinLens | None = None,
    focus_m: Sequence[float] | None = None,
    scale: float = 1.0,
    crop_multiple: int = 1,
    model: Model = "layered",
    psf: Psf = "disc",
    fill_hidden: bool = True,
    kernel_size: int | None = None,
    linear_light: bool = True,
    noise: NoiseConfig | None = None,
    seed: int = 0,
) -> FocalStack:
    """Render the focal stack of one RGB-D sample: the single RGB-D synthesis path of the project.

    Depth holes are filled (:func:`~focalstack.data.rgbd.fill_depth_holes`, farthest neighbour) for
    rendering only; the stack's ground-truth depth keeps 0 = invalid and its AIF is the sample's RGB
    (resized and cropped like the slices).

    Args:
        sample: the RGB-D sample (``rgb`` (3, H, W) sRGB, ``depth_m`` (H, W) metres, 0 = invalid).
        camera: camera at the sample's resolution, replacing ``sample.camera`` (None: the sample's).
        focus_m: (S,) focus distances in metres, replacing ``sample.focus_m`` (None: the sample's).
        scale: resize factor applied before rendering; the camera's pixel pitch follows.
        crop_multiple: crop (top-left anchored) to multiples of this many pixels after resizing.
        model, psf, fill_hidden, kernel_size, linear_light, noise: see :func:`synthesize_stack`.
        seed: run seed; the noise generator is seeded with ``scene_seed(seed, sample.name)``.

    Returns:
        A :class:`FocalStack`: images (S, 3, h, w) sRGB, ``depth_m`` (h, w) metres with 0 = invalid,
        ``aif`` (3, h, w); ``meta`` records every setting (``synth``, ``resolution``), the seeds and
        the sample's own ``meta`` (under ``rgbd``).

    Raises:
        ValueError: no camera or focus distances, bad scale or crop, or a rendering error.
    """
    camera = camera if camera is not None else sample.camera
    focus = focus_m if focus_m is not None else sample.focus_m
    if camera is None:
        raise ValueError(f"{sample.name}: the data has no camera; give one")
    if focus is None:
        raise ValueError(f"{sample.name}: the data has no focus distances; give them")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0, got {scale}")
    if not (isinstance(crop_multiple, int) and crop_multiple >= 1):
        raise ValueError(f"crop_multiple must be an integer >= 1, got {crop_multiple!r}")
    rgb, depth = _resize_rgbd(sample.rgb, sample.depth_m, scale, crop_multiple)
    camera = camera.scaled(scale) if scale != 1.0 else camera
    focus_t = torch.tensor([float(f) for f in focus], dtype=torch.float64)
    render_depth = fill_depth_holes(depth)
    noise = noise if noise is not None else NoiseConfig()
    num_layers = auto_num_layers(render_depth, camera, focus_t) if model == "layered" else None
    per_scene = scene_seed(seed, sample.name)
    images = synthesize_stack(
        rgb,
        render_depth,
        camera,
        focus_t,
        model=model,
        psf=psf,
        num_layers=num_layers,
        fill_hidden=fill_hidden,
        kernel_size=kernel_size,
        linear_light=linear_light,
        noise=noise,
        generator=torch.Generator().manual_seed(per_scene),
    )
    meta = {
        "source": f"focalstack.data.synth.synthesize_rgbd from {sample.meta.get('source', sample.name)}",
        "focus_source": "given" if focus_m is not None else "dataset",
        "synth": {
            "model": model,
            "psf": psf,
            "num_layers": num_layers,
            "fill_hidden": fill_hidden,
            "kernel_size": kernel_size,
            "linear_light": linear_light,
            "noise": dataclasses.asdict(noise),
            "seed": seed,
            "scene_seed": per_scene,
        },
        "resolution": {
            "source_size": list(sample.rgb.shape[-2:]),
            "scale": scale,
            "crop_multiple": crop_multiple,
            "size": list(rgb.shape[-2:]),
        },
        "rgbd": sample.meta,
    }
    return FocalStack(images, focus_t, camera, depth_m=depth, aif=rgb, name=sample.name, meta=meta)
