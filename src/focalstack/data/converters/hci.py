"""HCI 4D light-field benchmark -> focal stacks by synthetic-aperture refocusing.

Input: an HCI scene folder (Honauer et al., ACCV 2016; lightfield-analysis.net) holding
``input_Cam000.png`` ... ``input_Cam080.png`` (9 x 9 views, file index ``row * 9 + col``, row 0 at the
top, column 0 on the left), ``parameters.cfg`` (INI) and, for scenes with ground truth,
``gt_disp_lowres.pfm`` (disparity in pixels of the views, PFM rows stored bottom-up).

Conventions (checked against ``../shared/data/lightfield/antinous_stack``, which was made this way):

- Disparity ``d`` (pixels of the original views) is 0 on the focus plane at ``focus_distance_m`` and
  positive in front of it. Depth ``depth_m = baseline_m * f_px / (d + offset_px)`` with
  ``f_px = focal_length_mm / sensor_size_mm * max(res_x, res_y)`` and ``offset_px = baseline_m * f_px
  / focus_distance_m`` (the cfg's ``offset``, recomputed when absent).
- Refocusing at disparity ``d_f``: view (row r, column c) is shifted by ``((c - cc) d_f, (r - rc) d_f)``
  pixels (content moves right/down for positive values; (rc, cc) the centre view), bilinearly with
  replicated borders, and all views are averaged in linear light (a box-shaped aperture). Points at
  disparity ``d_f`` come out sharp. Downscaling (``size``) area-averages the refocused images in
  linear light and the disparity map (depth is computed from the downscaled disparity).
- Default focus disparities: ``num_slices`` values evenly spaced from the 98th to the 2nd percentile
  of the ground-truth disparity (near to far); without ground truth, the cfg's ``disp_max`` to
  ``disp_min``.
- Equivalent thin lens (written to scene.json): focal length = the cfg's, pixel pitch = sensor size /
  output resolution, aperture ``A = 4 * baseline * sqrt((n^2 - 1) / 12)`` for an n x n grid -- the disc
  diameter whose per-axis std (A / 4) equals that of the n discrete view positions -- and
  ``f_number = f / A``. Blur sizes then match the thin-lens CoC up to ``F / (F - f) - 1`` (1-3 %),
  because pure-shift refocusing keeps the sensor at the focal length. The true PSF is a 9 x 9 grid of
  points, not a disc or Gaussian.
"""

from __future__ import annotations

import configparser
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from focalstack.data.imageio import read_image
from focalstack.data.stack import FocalStack
from focalstack.optics.camera import ThinLens
from focalstack.utils.color import linear_to_srgb, srgb_to_linear

#: Percentiles of the ground-truth disparity spanned by the default focus disparities.
DEFAULT_PERCENTILES = (2.0, 98.0)


def read_pfm(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a PFM image (Portable Float Map).

    Args:
        path: ``.pfm`` file (``Pf`` grey or ``PF`` colour; a negative scale means little-endian).

    Returns:
        (H, W) or (H, W, 3) float32 array, top row first (PFM stores rows bottom-up).

    Raises:
        ValueError: not a PFM file, or truncated data.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            kind = fh.readline().strip()
            dims = fh.readline().split()
            scale = float(fh.readline().strip())
            data = fh.read()
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read PFM {path}: {e}") from e
    if kind not in (b"Pf", b"PF") or len(dims) != 2:
        raise ValueError(f"{path} is not a PFM file (header {kind!r} {dims!r})")
    width, height = int(dims[0]), int(dims[1])
    channels = 3 if kind == b"PF" else 1
    count = width * height * channels
    if len(data) < 4 * count:
        raise ValueError(f"PFM {path} is truncated: {len(data)} bytes for {width} x {height} x {channels}")
    arr = np.frombuffer(data[: 4 * count], dtype="<f4" if scale < 0 else ">f4").astype(np.float32)
    arr = arr.reshape(height, width, channels) if channels == 3 else arr.reshape(height, width)
    return np.ascontiguousarray(arr[::-1])


@dataclass(frozen=True)
class HCIParameters:
    """The parts of an HCI ``parameters.cfg`` that refocusing and depth conversion need.

    Attributes:
        focal_length_m: lens focal length, metres.
        sensor_size_m: sensor size along the longer image side, metres.
        resolution_px: view size ``(width, height)`` in pixels.
        baseline_m: spacing between neighbouring views, metres.
        num_cams: grid size ``(nx, ny)``.
        focus_distance_m: distance of the zero-disparity plane, metres.
        offset_px: disparity offset, ``baseline_m * focal_length_px / focus_distance_m``.
        disp_range_px: ``(disp_min, disp_max)`` of the scene from ``[meta]``, or None.
        scene: scene name from ``[meta]``, or None.
    """

    focal_length_m: float
    sensor_size_m: float
    resolution_px: tuple[int, int]
    baseline_m: float
    num_cams: tuple[int, int]
    focus_distance_m: float
    offset_px: float
    disp_range_px: tuple[float, float] | None = None
    scene: str | None = None

    @property
    def focal_length_px(self) -> float:
        """Focal length in pixels of the views."""
        return self.focal_length_m / self.sensor_size_m * max(self.resolution_px)

    def disparity_to_depth_m(self, disparity_px: torch.Tensor) -> torch.Tensor:
        """Disparity (pixels of the views) -> depth (metres): ``b f_px / (d + offset)``. Any shape."""
        return self.baseline_m * self.focal_length_px / (disparity_px + self.offset_px)

    def depth_to_disparity_px(self, depth_m: torch.Tensor) -> torch.Tensor:
        """Depth (metres) -> disparity (pixels of the views). Any shape."""
        return self.baseline_m * self.focal_length_px / depth_m - self.offset_px


def read_hci_parameters(path: str | os.PathLike[str]) -> HCIParameters:
    """Parse an HCI ``parameters.cfg``.

    Raises:
        ValueError: missing file or a missing/invalid required entry (named).
    """
    path = Path(path)
    cfg = configparser.ConfigParser()
    if not cfg.read(path):
        raise ValueError(f"cannot read HCI parameters {path}")

    def get(section: str, key: str) -> float:
        try:
            value = float(cfg[section][key])
        except (KeyError, ValueError) as e:
            raise ValueError(f"{path}: missing or invalid [{section}] {key}") from e
        if not math.isfinite(value):
            raise ValueError(f"{path}: [{section}] {key} is not finite")
        return value

    focal_m = get("intrinsics", "focal_length_mm") * 1e-3
    sensor_m = get("intrinsics", "sensor_size_mm") * 1e-3
    res = (int(get("intrinsics", "image_resolution_x_px")), int(get("intrinsics", "image_resolution_y_px")))
    baseline_m = get("extrinsics", "baseline_mm") * 1e-3
    cams = (int(get("extrinsics", "num_cams_x")), int(get("extrinsics", "num_cams_y")))
    focus_m = get("extrinsics", "focus_distance_m")
    if min(focal_m, sensor_m, baseline_m, focus_m, *res, *cams) <= 0:
        raise ValueError(f"{path}: lengths, resolution and camera counts must be > 0")
    f_px = focal_m / sensor_m * max(res)
    offset = (
        get("extrinsics", "offset") if cfg.has_option("extrinsics", "offset") else baseline_m * f_px / focus_m
    )
    disp_range = None
    if cfg.has_option("meta", "disp_min") and cfg.has_option("meta", "disp_max"):
        disp_range = (get("meta", "disp_min"), get("meta", "disp_max"))
    scene = cfg.get("meta", "scene", fallback=None)
    return HCIParameters(focal_m, sensor_m, res, baseline_m, cams, focus_m, offset, disp_range, scene)


def load_hci_views(folder: str | os.PathLike[str], params: HCIParameters) -> torch.Tensor:
    """Read the ``input_CamXXX.png`` views of a scene.

    Returns:
        (ny, nx, 3, H, W) float32 sRGB views; ``[r, c]`` is row r (top = 0), column c (left = 0).

    Raises:
        ValueError: a missing view or views of different sizes.
    """
    folder = Path(folder)
    nx, ny = params.num_cams
    views: torch.Tensor | None = None
    for k in range(nx * ny):
        p = folder / f"input_Cam{k:03d}.png"
        if not p.is_file():
            raise ValueError(f"HCI scene {folder} is missing view {p.name} ({nx} x {ny} grid)")
        view = read_image(p)
        if views is None:  # filled in place: stacking 81 views would copy them all once more
            views = view.new_empty((ny, nx, *view.shape))
        if view.shape != views.shape[2:]:
            raise ValueError(
                f"HCI scene {folder}: {p.name} is {tuple(view.shape)}, not {tuple(views.shape[2:])}"
            )
        views[k // nx, k % nx] = view
    assert views is not None
    return views


def _bilinear_taps(shift: float) -> tuple[int, float]:
    """``(k, w)`` with ``x - shift = x + k + w``, 0 <= w < 1 (bilinear taps at x + k and x + k + 1)."""
    k = math.floor(-shift)
    return k, -shift - k


def _accumulate_shift(acc: torch.Tensor, padded: torch.Tensor, pad: int, shift: float, dim: int) -> None:
    """``acc += img(x - shift)`` along ``dim`` (-1: x, -2: y); ``padded`` is img with ``pad`` border px."""
    k, w = _bilinear_taps(shift)
    n = acc.shape[dim]
    for offset, weight in ((0, 1.0 - w), (1, w)):
        if weight != 0.0:
            acc.add_(padded.narrow(dim, pad + k + offset, n), alpha=weight)


def shift_image(img: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """Translate an image by ``(dx, dy)`` pixels: ``out(x, y) = img(x - dx, y - dy)``.

    Bilinear interpolation with replicated borders (the same as ``grid_sample(..., "border")``).

    Args:
        img: (C, H, W) float tensor.
        dx, dy: shift in pixels (positive moves the content right / down).

    Returns:
        (C, H, W) tensor.
    """
    pad = math.ceil(max(abs(dx), abs(dy))) + 1
    padded = F.pad(img[None], (pad,) * 4, mode="replicate")[0]
    rows = torch.zeros_like(padded[..., pad:-pad])
    _accumulate_shift(rows, padded, pad, dx, -1)
    out = torch.zeros_like(img)
    _accumulate_shift(out, rows, pad, dy, -2)
    return out


def refocus_views(
    views: torch.Tensor,
    disparities_px: Sequence[float],
    *,
    linear_light: bool = True,
    size: tuple[int, int] | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Synthetic-aperture refocusing of a light field (box aperture over all views).

    Args:
        views: (ny, nx, 3, H, W) sRGB views, ``[r, c]`` row r from the top, column c from the left.
        disparities_px: (S,) focus disparities in pixels of the views.
        linear_light: average (and downscale) linear-light values, as light adds up.
        size: output ``(h, w)``; the refocused images are area-averaged to it (default: view size).
        progress: show a tqdm bar over the views.

    Returns:
        (S, 3, h, w) float32 sRGB slices in [0, 1].
    """
    if views.dim() != 5 or views.shape[2] != 3:
        raise ValueError(f"views must be (ny, nx, 3, H, W), got {tuple(views.shape)}")
    disparities = [float(d) for d in disparities_px]
    if not disparities or not all(math.isfinite(d) for d in disparities):
        raise ValueError(f"need at least one finite focus disparity, got {disparities_px!r}")
    ny, nx = views.shape[:2]
    rc, cc = (ny - 1) / 2.0, (nx - 1) / 2.0
    pad = math.ceil(max(abs(d) for d in disparities) * max(rc, cc)) + 1
    acc = views.new_zeros((len(disparities), *views.shape[2:]), dtype=torch.float32)
    # All views of a row share the vertical shift: shift each view along x into a per-row sum (kept
    # padded in y), then shift the row sum along y once.
    row_sum = views.new_zeros(
        (len(disparities), 3, views.shape[-2] + 2 * pad, views.shape[-1]), dtype=torch.float32
    )
    for r in tqdm(range(ny), desc="refocus", disable=not progress):
        row_sum.zero_()
        for c in range(nx):
            view = views[r, c].float()
            view = srgb_to_linear(view) if linear_light else view
            padded = F.pad(view[None], (pad,) * 4, mode="replicate")[0]
            for s, d in enumerate(disparities):
                _accumulate_shift(row_sum[s], padded, pad, (c - cc) * d, -1)
        for s, d in enumerate(disparities):
            _accumulate_shift(acc[s], row_sum[s], pad, (r - rc) * d, -2)
    out = acc / (nx * ny)
    if size is not None and tuple(size) != tuple(out.shape[-2:]):
        out = F.interpolate(out, size=tuple(size), mode="area")
    return (linear_to_srgb(out) if linear_light else out.clamp(0.0, 1.0)).float()


def default_focus_disparities(
    disparity_px: torch.Tensor | np.ndarray,
    num_slices: int,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> list[float]:
    """Focus disparities evenly spaced from the high to the low percentile of a disparity map (near first).

    Args:
        disparity_px: (H, W) disparity in pixels.
        num_slices: S >= 2.
        percentiles: (low, high) percentiles in [0, 100].
    """
    if num_slices < 2:
        raise ValueError(f"num_slices must be >= 2, got {num_slices}")
    d = np.asarray(disparity_px, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        raise ValueError("disparity map has no finite value")
    lo, hi = np.percentile(d, percentiles[0]), np.percentile(d, percentiles[1])
    return [float(x) for x in np.linspace(hi, lo, num_slices)]


def equivalent_thin_lens(params: HCIParameters, image_size: tuple[int, int]) -> ThinLens:
    """The thin lens whose disc PSF matches the box-aperture refocus blur (module docstring).

    Args:
        params: scene parameters.
        image_size: ``(h, w)`` of the images the camera describes (sets the pixel pitch).
    """
    nx, ny = params.num_cams
    if nx != ny:
        raise ValueError(f"equivalent thin lens needs a square view grid, got {nx} x {ny}")
    aperture_m = 4.0 * params.baseline_m * math.sqrt((nx * nx - 1) / 12.0)
    pitch_m = params.sensor_size_m / max(image_size)
    return ThinLens(params.focal_length_m, params.focal_length_m / aperture_m, pitch_m)


def _output_size(view_hw: tuple[int, int], size: int | None) -> tuple[int, int]:
    h, w = view_hw
    if size is None:
        return h, w
    if not 1 <= size <= max(h, w):
        raise ValueError(f"size must be in [1, {max(h, w)}] pixels (the view size), got {size}")
    k = size / max(h, w)
    return max(1, round(h * k)), max(1, round(w * k))


def convert_hci_scene(
    folder: str | os.PathLike[str],
    *,
    num_slices: int = 5,
    focus_disparities_px: Sequence[float] | None = None,
    size: int | None = None,
    linear_light: bool = True,
    progress: bool = False,
) -> FocalStack:
    """Refocus one HCI scene into a focal stack with ground truth and its equivalent thin lens.

    Args:
        folder: HCI scene folder (views, ``parameters.cfg``, optional ``gt_disp_lowres.pfm``).
        num_slices: number of slices when ``focus_disparities_px`` is not given.
        focus_disparities_px: focus disparities in pixels of the original views (default: module
            docstring).
        size: longer side of the output in pixels (area downscale), e.g. 256; default: view size.
        linear_light: refocus in linear light.
        progress: show a progress bar.

    Returns:
        The :class:`FocalStack` (slices in the order of the focus disparities; depth and AIF from the
        ground truth and the centre view).
    """
    folder = Path(folder)
    params = read_hci_parameters(folder / "parameters.cfg")
    views = load_hci_views(folder, params)
    ny, nx = views.shape[:2]
    out_hw = _output_size(tuple(views.shape[-2:]), size)

    disparity = None
    gt_path = folder / "gt_disp_lowres.pfm"
    if gt_path.is_file():
        disparity = torch.from_numpy(read_pfm(gt_path))
        if disparity.shape != views.shape[-2:]:
            raise ValueError(
                f"{gt_path}: disparity {tuple(disparity.shape)} != view size {tuple(views.shape[-2:])}"
            )
    if focus_disparities_px is None:
        if disparity is not None:
            focus_disparities_px = default_focus_disparities(disparity, num_slices)
        elif params.disp_range_px is not None:
            lo, hi = params.disp_range_px
            focus_disparities_px = [float(x) for x in np.linspace(hi, lo, num_slices)]
        else:
            raise ValueError(f"{folder}: no ground truth or disparity range; pass focus_disparities_px")
    disparities = [float(d) for d in focus_disparities_px]

    images = refocus_views(views, disparities, linear_light=linear_light, size=out_hw, progress=progress)
    centre = views[ny // 2, nx // 2][None]
    aif = refocus_views(centre[None], [0.0], linear_light=linear_light, size=out_hw)[0]
    focus_m = params.disparity_to_depth_m(torch.tensor(disparities, dtype=torch.float64))
    if (focus_m <= 0).any():
        raise ValueError(f"focus disparities {disparities} lie behind the camera (depth <= 0)")
    camera = equivalent_thin_lens(params, out_hw)

    depth = None
    meta: dict[str, Any] = {
        "source": f"HCI 4D light field benchmark, scene {params.scene or folder.name!r} (CC BY-NC-SA 4.0)",
        "focus_disparities_px": disparities,
        "disparity_units": f"pixels of the {views.shape[-1]} x {views.shape[-2]} views",
        "camera": {"aperture_m": camera.aperture_m},
        "image_size": list(out_hw),
        "psf": f"synthetic aperture, {nx}x{ny} views, box-shaped; refocus shift sign 1",
        "note": "equivalent thin lens assumes sensor distance = focal length (pure-shift refocus); blur "
        "sizes match the thin-lens CoC to within F/(F-f)-1 (about 1-3 %)",
    }
    if disparity is not None:
        small = F.interpolate(disparity[None, None].double(), size=out_hw, mode="area")[0, 0]
        depth_full = params.disparity_to_depth_m(small)
        depth = torch.where(torch.isfinite(depth_full) & (depth_full > 0), depth_full, 0.0).float()
        valid = depth[depth > 0]
        meta["depth_range_m"] = [float(valid.min()), float(valid.max())]
    return FocalStack(images, focus_m, camera, depth, aif, params.scene or folder.name, meta)


def find_hci_scenes(src: str | os.PathLike[str]) -> list[Path]:
    """HCI scene folders at or below ``src`` (folders holding ``parameters.cfg``), sorted."""
    src = Path(src)
    if (src / "parameters.cfg").is_file():
        return [src]
    if not src.is_dir():
        raise ValueError(f"{src} is not a directory")
    scenes = sorted(p.parent for p in src.rglob("parameters.cfg"))
    if not scenes:
        raise ValueError(f"no HCI scene (folder with parameters.cfg) found under {src}")
    return scenes


def iter_hci(src: str | os.PathLike[str], **kwargs: Any) -> Iterator[FocalStack]:
    """Convert every HCI scene at or below ``src``; ``kwargs`` go to :func:`convert_hci_scene`."""
    for folder in find_hci_scenes(src):
        yield convert_hci_scene(folder, **kwargs)
