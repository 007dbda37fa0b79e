"""Writing a prediction to disk: the files every ``predict``/``fit`` run produces.

Per scene folder ``OUT``:
- ``depth.npy``: float32 (H, W) depth in metres (or in slice units when the focus distances are
  unknown; ``prediction.json`` says which);
- ``depth.png``: 16-bit PNG, ``depth = offset + value * scale`` with scale/offset in ``prediction.json``;
- ``depth_color.png``: colour-mapped inverse depth with a labelled scale bar (near = warm);
- ``aif.png``: the all-in-focus image (8-bit sRGB);
- ``recon.png``: rows of input slices, slices re-rendered from (depth, AIF) through the lens, and their
  absolute error x4 (only when the camera is known);
- ``prediction.json``: units, PNG scale, method, camera, focus distances, re-rendering PSNR, timings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from focalstack.data.stack import FocalStack
from focalstack.optics.forward import render_from_depth
from focalstack.utils.io import atomic_path, write_json

COLORMAP = cv2.COLORMAP_TURBO


def _write_png(path: Path, array: np.ndarray) -> None:
    """Atomic PNG write of an (H, W) or (H, W, 3) RGB uint8/uint16 array."""
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), array):
            raise OSError(f"could not write {path}")


def to_uint8_rgb(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    arr = img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return np.round(arr * 255.0).astype(np.uint8)


def colorize_depth(
    depth: np.ndarray, *, label: str = "m", inverse: bool = True, bar: bool = True
) -> np.ndarray:
    """Colour-map a depth map (near = warm) and append a labelled scale bar.

    Args:
        depth: (H, W) depth in metres (finite > 0 where valid) or a slice coordinate.
        label: unit shown on the scale bar.
        inverse: map inverse depth (metric depth); False maps the values linearly (slice units,
            where a larger slice coordinate is nearer for a far-to-near stack).
        bar: append the scale bar on the right.

    Returns:
        (H, W + bar width, 3) uint8 RGB.
    """
    valid = np.isfinite(depth) & ((depth > 0) if inverse else True)
    if not valid.any():
        return np.zeros((*depth.shape, 3), np.uint8)
    lo, hi = float(depth[valid].min()), float(depth[valid].max())
    hi = hi if hi > lo else lo + 1e-6
    fwd = (lambda v: 1.0 / v) if inverse else (lambda v: v)
    inv = (lambda v: 1.0 / v) if inverse else (lambda v: v)
    a, b = (fwd(hi), fwd(lo)) if inverse else (lo, hi)
    vals = fwd(np.where(valid, depth, hi))
    norm = (vals - a) / (b - a)
    img = cv2.applyColorMap(np.round(norm.clip(0, 1) * 255).astype(np.uint8), COLORMAP)
    img[~valid] = 0
    if bar:
        img = np.concatenate([img, _scale_bar(depth.shape[0], a, b, inv, label)], axis=1)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _scale_bar(height: int, a: float, b: float, to_label, label: str) -> np.ndarray:
    """BGR scale bar: top = ``b`` (warm), bottom = ``a``; ``to_label`` maps bar values to labels."""
    width = max(60, height // 5)
    bar = np.full((height, width, 3), 255, np.uint8)
    ramp = np.linspace(255, 0, height).astype(np.uint8)[:, None]
    bar[:, : width // 3] = cv2.applyColorMap(np.repeat(ramp, width // 3, axis=1), COLORMAP)
    font_scale = max(0.3, height / 700)
    for frac in np.linspace(0.0, 1.0, 5):
        y = int(round(frac * (height - 1)))
        text = f"{to_label(b + frac * (a - b)):.3g}{label}"
        ty = min(max(y + 4, 10), height - 3)
        cv2.putText(
            bar, text, (width // 3 + 3, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1, cv2.LINE_AA
        )
    return bar


def depth_png(depth: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """Quantise depth to 16 bits: ``depth = offset + value * scale``; value 0 marks invalid pixels."""
    valid = np.isfinite(depth)
    if not valid.any():
        return np.zeros(depth.shape, np.uint16), {"scale": 1.0, "offset": 0.0}
    lo, hi = float(depth[valid].min()), float(depth[valid].max())
    offset = min(0.0, lo - (hi - lo) / 65534.0)  # keeps every valid value >= 1
    scale = max(hi - offset, 1e-12) / 65535.0
    values = np.where(valid, np.round((np.where(valid, depth, offset) - offset) / scale), 0)
    if offset == 0.0:
        values = np.where(depth > 0, values, 0)
    return values.clip(0, 65535).astype(np.uint16), {"scale": scale, "offset": offset}


def recon_grid(inputs: torch.Tensor, rerendered: torch.Tensor, max_width: int = 2048) -> np.ndarray:
    """(S, 3, H, W) inputs and re-renderings -> RGB uint8 grid: inputs / re-rendered / |error| x 4."""
    err = ((inputs - rerendered).abs() * 4).clamp(0, 1)
    rows = [torch.cat(list(t), dim=2) for t in (inputs, rerendered, err)]
    grid = torch.cat(rows, dim=1)
    out = to_uint8_rgb(grid)
    if out.shape[1] > max_width:
        f = max_width / out.shape[1]
        out = cv2.resize(out, (max_width, max(1, round(out.shape[0] * f))), interpolation=cv2.INTER_AREA)
    return out


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB for images in [0, 1]."""
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def rerender(stack: FocalStack, depth_m: torch.Tensor, aif: torch.Tensor, **render_kwargs) -> torch.Tensor:
    """Re-render a stack's slices from a predicted (depth, AIF) through its lens.

    Args:
        stack: the input stack; needs focus distances and a complete camera.
        depth_m: (H, W) depth in metres.
        aif: (3, H, W) all-in-focus image.
        **render_kwargs: forwarded to the renderer (default: window sized to the largest blur).

    Returns:
        (S, 3, H, W) re-rendered slices.
    """
    if stack.camera is None or stack.focus_m is None:
        raise ValueError(f"scene {stack.name!r}: re-rendering needs focus distances and a complete camera")
    cam = stack.camera
    render_kwargs.setdefault("kernel_size", None)
    with torch.no_grad():
        out = render_from_depth(
            aif[None].float(),
            depth_m[None, None].float(),
            stack.focus_m[None].to(aif.device, torch.float32),
            cam.focal_length_m,
            cam.f_number,
            cam.pixel_size_m,
            **render_kwargs,
        )
    return out[0]


def write_prediction(
    out_dir: str | Path,
    stack: FocalStack,
    depth: torch.Tensor,
    aif: torch.Tensor,
    *,
    depth_units: str = "m",
    rerendered: torch.Tensor | None = None,
    extra_meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the prediction files (see module docstring) into ``out_dir``.

    Args:
        out_dir: output folder (created).
        stack: the input stack (for ``recon.png`` and the metadata).
        depth: (H, W) depth in ``depth_units`` ("m" for metres, "slices" for relative slice units).
        aif: (3, H, W) all-in-focus image, sRGB in [0, 1].
        depth_units: "m" or "slices".
        rerendered: (S, 3, H, W) slices re-rendered from (depth, aif); computed here when omitted and
            the stack has a camera and focus distances.
        extra_meta: extra fields for ``prediction.json``.

    Returns:
        The dict written to ``prediction.json``.
    """
    if depth.dim() != 2 or aif.dim() != 3 or aif.shape[0] != 3 or aif.shape[1:] != depth.shape:
        raise ValueError(
            f"expected depth (H, W) and aif (3, H, W), got {tuple(depth.shape)}, {tuple(aif.shape)}"
        )
    if depth_units not in ("m", "slices"):
        raise ValueError(f"depth_units must be 'm' or 'slices', got {depth_units!r}")
    if tuple(stack.images.shape[-2:]) != tuple(depth.shape):
        raise ValueError(
            f"prediction size {tuple(depth.shape)} != stack size {tuple(stack.images.shape[-2:])}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    d = depth.detach().float().cpu().numpy().astype(np.float32)
    with atomic_path(out / "depth.npy") as tmp:
        np.save(tmp, d)
    values, png_scale = depth_png(d)
    _write_png(out / "depth.png", values)
    metric = depth_units == "m"
    _write_png(out / "depth_color.png", colorize_depth(d, label="m" if metric else "", inverse=metric))
    _write_png(out / "aif.png", to_uint8_rgb(aif))
    info: dict[str, Any] = {
        "scene": stack.name,
        "depth_units": depth_units,
        "depth_png": {**png_scale, "formula": "depth = offset + value * scale"},
        "size_hw": list(d.shape),
        "focus_distances_m": None if stack.focus_m is None else [float(f) for f in stack.focus_m],
        "camera": None if stack.camera is None else stack.camera.to_dict(),
    }
    can_render = stack.camera is not None and stack.focus_m is not None and depth_units == "m"
    if rerendered is None and can_render:
        rerendered = rerender(stack, depth.detach().cpu(), aif.detach().cpu())
    if rerendered is not None:
        inputs = stack.images.detach().cpu()
        _write_png(out / "recon.png", recon_grid(inputs, rerendered.detach().cpu()))
        info["rerender_psnr_db"] = [round(psnr(a, b), 3) for a, b in zip(inputs, rerendered.cpu())]
    info.update(dict(extra_meta or {}))
    write_json(out / "prediction.json", info)
    return info
