"""RGB-D readers: an all-in-focus photo plus metric depth, the raw material of synthetic focal stacks.

:func:`iter_rgbd` yields :class:`RGBDSample` s from three layouts (``kind``):

``"folder"`` -- any folder of RGB images and depth maps, paired by file stem. Tried in this order:

1. ``rgb/`` and ``depth/`` subfolders: ``rgb/X.<img>`` pairs with ``depth/X.<depth>``;
2. ``<split>_rgb/`` and ``<split>_depth/`` subfolder pairs (e.g. ``train_rgb`` + ``train_depth``, the
   layout of the paper's NYUv2 export); samples are named ``<split>_X``;
3. flat: ``X.<img>`` pairs with ``X_depth.<depth>`` (or ``X.npy``) in the same folder.

``<img>`` is png/jpg/jpeg/bmp/tif/tiff; ``<depth>`` is png/tif/tiff/npy. Integer depth images (8/16-bit
PNG or TIFF) are multiplied by ``depth_scale`` (metres per unit: 0.001 for millimetres, 1e-4 for the
paper's NYUv2 PNG export) which must then be given; float data (``.npy``, float TIFF) is metres. 0 (and
non-finite values) mark invalid pixels.

``"dfd-indoor"`` -- the DFD-indoor layout (Carvalho et al. 2018) of ``../shared/data/rgbd``: a root with
``dataset.json`` and one folder per scene holding ``rgb_f8.jpg`` (f/8, nearly all in focus: used as the
AIF), ``rgb_f2.8.jpg`` (the same view at f/2.8 focused at 1.7 m: a real defocused photo, its path is
kept in ``meta``) and ``depth_mm.png`` (uint16 millimetres from a registered Kinect-type sensor).
Depth 0 marks sensor holes; readings past about 3.5 m are unreliable (``max_valid_depth_m=3.5``
invalidates them). The paper protocol (on by default, ``protocol=True``): images downsampled by 2 and
cropped to a multiple of 16 from the top-left corner (645 x 432 -> 320 x 208, as the public DEReD code
crops), DSLR camera f = 17 mm, N = 1.2, p = 12 um at that resolution, focus 1, 1.5, 2.5, 4, 6 m (read
from ``dataset.json``'s ``paper_protocol`` when present).

``"nyu-mat"`` -- the NYUv2 labeled set ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5, read with h5py).
MATLAB stores arrays column-major, so h5py sees ``images`` as (N, 3, 640, 480) uint8 and ``depths`` as
(N, 640, 480) float metres; both are transposed to 480 x 640 (rows x columns). The paper protocol (on
by default): depth clipped to [0.1, 10] m, downsampled by 2 to 320 x 240, camera N = 8, f = 50 mm,
p = 12 um, focus 1, 1.5, 2.5, 4, 6 m. Samples are named ``nyu_<index>`` (0-based file order).

Resampling: images are area-averaged in linear light; depth is averaged over the valid pixels of each
block (a block without valid pixels stays 0). Without the protocol the full resolution is kept and
the protocol camera's pixel pitch is halved accordingly (``ThinLens.scaled(2)``).

:func:`fill_depth_holes` fills invalid pixels for rendering only; ground truth keeps 0 = invalid.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from focalstack.data.imageio import read_depth_png, read_image
from focalstack.optics.camera import ThinLens
from focalstack.utils.color import linear_to_srgb, srgb_to_linear

RGBDKind = Literal["folder", "dfd-indoor", "nyu-mat"]
RGBD_KINDS: tuple[str, ...] = ("folder", "dfd-indoor", "nyu-mat")

#: The paper's synthetic-stack protocols (../shared/notes/method.md, "Cameras used by the paper's code").
PAPER_FOCUS_M: tuple[float, ...] = (1.0, 1.5, 2.5, 4.0, 6.0)
NYU_CAMERA = ThinLens(focal_length_m=0.05, f_number=8.0, pixel_size_m=12e-6)
NYU_DEPTH_CLIP_M = (0.1, 10.0)
DFD_CAMERA = ThinLens(focal_length_m=0.017, f_number=1.2, pixel_size_m=12e-6)

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_DEPTH_SUFFIXES = (".png", ".tif", ".tiff", ".npy")


@dataclass
class RGBDSample:
    """One RGB-D sample.

    Attributes:
        name: unique sample name (usable as a folder name).
        rgb: (3, H, W) float32 sRGB in [0, 1], all in focus.
        depth_m: (H, W) float32 depth in metres, 0 where invalid.
        camera: thin-lens camera for synthesis at this resolution, or None when unknown.
        focus_m: focus distances (metres) of the stack to synthesise, or None when unknown.
        meta: provenance (source file, protocol, dataset notes); JSON-serialisable.
    """

    name: str
    rgb: torch.Tensor
    depth_m: torch.Tensor
    camera: ThinLens | None = None
    focus_m: list[float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------
# Resampling and depth utilities


def downsample_rgb(rgb: torch.Tensor, factor: int) -> torch.Tensor:
    """Area-average an sRGB image by an integer factor in linear light.

    Args:
        rgb: (3, H, W) or (N, 3, H, W) sRGB in [0, 1].
        factor: integer factor >= 1; trailing rows/columns that do not fill a block are dropped.

    Returns:
        (..., 3, H // factor, W // factor) sRGB in [0, 1].
    """
    if factor < 1:
        raise ValueError(f"downsampling factor must be >= 1, got {factor}")
    if factor == 1:
        return rgb
    batched = rgb if rgb.dim() == 4 else rgb[None]
    out = linear_to_srgb(F.avg_pool2d(srgb_to_linear(batched), factor))
    return out if rgb.dim() == 4 else out[0]


def downsample_depth(depth_m: torch.Tensor, factor: int) -> torch.Tensor:
    """Average depth over the valid (> 0) pixels of each ``factor x factor`` block.

    Args:
        depth_m: (H, W) metres, 0 = invalid.
        factor: integer factor >= 1.

    Returns:
        (H // factor, W // factor) metres; blocks without a valid pixel are 0.
    """
    if factor < 1:
        raise ValueError(f"downsampling factor must be >= 1, got {factor}")
    if factor == 1:
        return depth_m
    valid = (depth_m > 0).to(depth_m.dtype)[None, None]
    total = F.avg_pool2d(depth_m[None, None] * valid, factor)
    count = F.avg_pool2d(valid, factor)
    return torch.where(count > 0, total / count.clamp_min(1e-12), torch.zeros_like(total))[0, 0]


def crop_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Crop the last two dims of ``x`` from the top-left corner to multiples of ``multiple`` pixels."""
    h, w = x.shape[-2:]
    hh, ww = h // multiple * multiple, w // multiple * multiple
    if hh == 0 or ww == 0:
        raise ValueError(f"image of {h} x {w} pixels is smaller than the crop multiple {multiple}")
    return x[..., :hh, :ww]


def fill_depth_holes(depth_m: torch.Tensor) -> torch.Tensor:
    """Fill invalid depth (0 or non-finite) from the surrounding valid depth, for rendering only.

    Holes grow shut from their border one pixel per step, each new pixel taking the largest
    (farthest) depth among its filled 8-neighbours. Farthest, because depth-sensor holes are mostly
    the background shadowed by a foreground edge; the fill never invents a depth outside the
    measured range. Ground truth keeps its holes.

    Args:
        depth_m: (H, W) depth in metres, 0 = invalid.

    Returns:
        (H, W) depth in metres, > 0 everywhere, same dtype/device as the input.

    Raises:
        ValueError: not (H, W), or no valid pixel at all.
    """
    if depth_m.dim() != 2:
        raise ValueError(f"depth_m must be (H, W), got {tuple(depth_m.shape)}")
    valid = torch.isfinite(depth_m) & (depth_m > 0)
    if not valid.any():
        raise ValueError("depth map has no valid (> 0) pixel to fill holes from")
    filled = torch.where(valid, depth_m, torch.zeros_like(depth_m))[None, None]
    holes = ~valid[None, None]
    while holes.any():
        grown = F.max_pool2d(filled, 3, stride=1, padding=1)  # invalid pixels are 0, never the max
        filled = torch.where(holes, grown, filled)
        holes = filled <= 0
    return filled[0, 0]


def _invalidate_beyond(depth_m: torch.Tensor, max_valid_depth_m: float | None) -> torch.Tensor:
    if max_valid_depth_m is None:
        return depth_m
    return torch.where(depth_m > max_valid_depth_m, torch.zeros_like(depth_m), depth_m)


def _clean_depth(depth: torch.Tensor) -> torch.Tensor:
    """float32 depth with non-finite and non-positive values set to 0 (invalid)."""
    depth = depth.float()
    return torch.where(torch.isfinite(depth) & (depth > 0), depth, torch.zeros_like(depth))


# ----------------------------------------------------------------------------------------------------
# "folder"


def _find_depth(folder: Path, stem: str, suffixes: Sequence[str]) -> Path | None:
    hits = [folder / f"{stem}{s}" for s in suffixes if (folder / f"{stem}{s}").is_file()]
    if len(hits) > 1:
        raise ValueError(f"ambiguous depth for {stem!r} in {folder}: {[h.name for h in hits]}")
    return hits[0] if hits else None


def _pair_subfolders(rgb_dir: Path, depth_dir: Path, prefix: str) -> list[tuple[str, Path, Path]]:
    pairs = []
    for img in sorted(p for p in rgb_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES):
        depth = _find_depth(depth_dir, img.stem, _DEPTH_SUFFIXES)
        if depth is None:
            raise ValueError(f"no depth map for {img} in {depth_dir} (expected {img.stem}.png|.tif|.npy)")
        pairs.append((f"{prefix}{img.stem}", img, depth))
    return pairs


def _list_folder(root: Path) -> list[tuple[str, Path, Path]]:
    """(name, rgb path, depth path) per sample, following the pairing rules of the module docstring."""
    if (root / "rgb").is_dir() and (root / "depth").is_dir():
        return _pair_subfolders(root / "rgb", root / "depth", "")
    split_pairs = sorted(
        d.name[: -len("_rgb")]
        for d in root.iterdir()
        if d.is_dir() and d.name.endswith("_rgb") and (root / f"{d.name[:-4]}_depth").is_dir()
    )
    if split_pairs:
        pairs = []
        for split in split_pairs:
            pairs += _pair_subfolders(root / f"{split}_rgb", root / f"{split}_depth", f"{split}_")
        return pairs
    pairs = []
    files = sorted(p for p in root.iterdir() if p.is_file())
    for img in files:
        if img.suffix.lower() not in _IMAGE_SUFFIXES or img.stem.endswith("_depth"):
            continue
        depth = _find_depth(root, f"{img.stem}_depth", _DEPTH_SUFFIXES) or _find_depth(
            root, img.stem, (".npy",)
        )
        if depth is not None:
            pairs.append((img.stem, img, depth))
    return pairs


def read_depth_file(path: str | os.PathLike[str], depth_scale: float | None = None) -> torch.Tensor:
    """Read a depth map: ``.npy`` / float TIFF in metres, or an integer PNG/TIFF times ``depth_scale``.

    Args:
        path: depth file.
        depth_scale: metres per stored unit; required for integer images, ignored for float data.

    Returns:
        (H, W) float32 depth in metres, 0 where invalid (0, negative or non-finite).

    Raises:
        ValueError: unreadable file, not single-channel, or an integer image without ``depth_scale``.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path)
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read depth {path}: {e}") from e
    else:
        arr = (
            cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED) if path.is_file() else None
        )
        if arr is None:
            raise ValueError(f"cannot read depth image {path}")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ValueError(f"depth {path} must be a single-channel (H, W) map, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        if depth_scale is None:
            raise ValueError(
                f"depth image {path} stores integers: pass depth_scale (metres per unit, e.g. 0.001 for mm)"
            )
        if not depth_scale > 0:
            raise ValueError(f"depth_scale must be > 0 metres per unit, got {depth_scale}")
        if path.suffix.lower() == ".png":
            return read_depth_png(path, scale_m=depth_scale)
        return _clean_depth(torch.from_numpy(arr.astype(np.float64) * depth_scale))
    return _clean_depth(torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)))


def _check_same_size(name: str, rgb: torch.Tensor, depth: torch.Tensor) -> None:
    if rgb.shape[-2:] != depth.shape[-2:]:
        raise ValueError(
            f"sample {name!r}: RGB is {tuple(rgb.shape[-2:])} but depth is {tuple(depth.shape[-2:])} (H, W)"
        )


# ----------------------------------------------------------------------------------------------------
# "dfd-indoor"


def _list_dfd(root: Path) -> list[Path]:
    scenes = sorted(d for d in root.iterdir() if d.is_dir() and (d / "rgb_f8.jpg").is_file())
    if not scenes:
        raise ValueError(f"{root} has no DFD-indoor scene folders (<scene>/rgb_f8.jpg + depth_mm.png)")
    return scenes


def _dfd_protocol(root: Path) -> tuple[ThinLens, list[float], dict[str, Any]]:
    info_path = root / "dataset.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    proto = info.get("paper_protocol", {})
    camera = ThinLens.from_dict(proto["camera"]) if "camera" in proto else DFD_CAMERA
    focus = [float(f) for f in proto.get("focus_distances_m", PAPER_FOCUS_M)]
    return camera, focus, info


def _load_dfd(
    scene: Path,
    camera: ThinLens,
    focus: list[float],
    info: dict[str, Any],
    protocol: bool,
    max_valid_depth_m: float | None,
) -> RGBDSample:
    rgb = read_image(scene / "rgb_f8.jpg")
    depth = read_depth_png(scene / "depth_mm.png", scale_m=1e-3)
    _check_same_size(scene.name, rgb, depth)
    if protocol:
        rgb = crop_to_multiple(downsample_rgb(rgb, 2), 16)
        depth = crop_to_multiple(downsample_depth(depth, 2), 16)
    else:
        camera = camera.scaled(2.0)  # the protocol pitch refers to the half-resolution images
    capture = info.get("capture_camera", {})
    meta = {
        "source": info.get("source", "DFD-indoor (Carvalho et al. 2018)"),
        "dataset": "dfd-indoor",
        "scene": scene.name,
        "protocol": "paper (downsample 2, top-left crop to x16)" if protocol else "none (full resolution)",
        "depth_note": "Kinect-type sensor: 0 = hole, unreliable past about 3.5 m",
        "max_valid_depth_m": max_valid_depth_m,
        "real_photo": str(scene / "rgb_f2.8.jpg") if (scene / "rgb_f2.8.jpg").is_file() else None,
        "real_photo_f_number": 2.8,
        "real_photo_focus_m": capture.get("focus_distance_m", 1.7),
    }
    return RGBDSample(
        f"dfd_indoor_{scene.name}",
        rgb,
        _invalidate_beyond(depth, max_valid_depth_m),
        camera,
        list(focus),
        meta,
    )


# ----------------------------------------------------------------------------------------------------
# "nyu-mat"


def _open_nyu(path: Path) -> Any:
    import h5py  # only this kind needs it

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path} is not a MATLAB v7.3 (HDF5) file readable by h5py: {e}") from e
    problem = None
    missing = [key for key in ("images", "depths") if key not in f]
    if missing:
        problem = f"{path} has no {missing[0]!r} dataset (keys: {sorted(f.keys())})"
    else:
        images, depths = f["images"], f["depths"]
        if images.ndim != 4 or images.shape[1] != 3 or depths.shape != (images.shape[0], *images.shape[2:]):
            problem = (
                f"{path}: expected images (N, 3, W, H) and depths (N, W, H) as h5py sees NYUv2, got "
                f"{images.shape} and {depths.shape}"
            )
    if problem is not None:
        f.close()
        raise ValueError(problem)
    return f


def _load_nyu(f: Any, index: int, protocol: bool, max_valid_depth_m: float | None) -> RGBDSample:
    # h5py reverses MATLAB's column-major dims: (3, W, H) -> (3, H, W) and (W, H) -> (H, W).
    img = np.asarray(f["images"][index]).transpose(0, 2, 1)
    rgb = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32) / 255.0)
    depth = _clean_depth(torch.from_numpy(np.ascontiguousarray(np.asarray(f["depths"][index]).T)))
    camera = NYU_CAMERA
    if protocol:
        lo, hi = NYU_DEPTH_CLIP_M
        depth = torch.where(depth > 0, depth.clamp(lo, hi), depth)
        rgb, depth = downsample_rgb(rgb, 2), downsample_depth(depth, 2)
    else:
        camera = camera.scaled(2.0)
    meta = {
        "source": "NYU Depth V2 labeled (Silberman et al. 2012)",
        "dataset": "nyu-mat",
        "index": index,
        "protocol": "paper (clip 0.1-10 m, downsample 2)" if protocol else "none (full resolution)",
        "max_valid_depth_m": max_valid_depth_m,
    }
    return RGBDSample(
        f"nyu_{index:04d}",
        rgb,
        _invalidate_beyond(depth, max_valid_depth_m),
        camera,
        list(PAPER_FOCUS_M),
        meta,
    )


# ----------------------------------------------------------------------------------------------------
# Public entry points


def _check_kind(kind: str, path: Path) -> None:
    if kind not in RGBD_KINDS:
        raise ValueError(f"unknown RGB-D kind {kind!r}; expected one of {RGBD_KINDS}")
    if kind == "nyu-mat" and not path.is_file():
        raise ValueError(f"nyu-mat needs the .mat file, {path} is not a file")
    if kind != "nyu-mat" and not path.is_dir():
        raise ValueError(f"{kind} needs a folder, {path} is not a directory")


def count_rgbd(kind: RGBDKind, path: str | os.PathLike[str]) -> int:
    """Number of samples :func:`iter_rgbd` would yield for ``kind`` at ``path`` (without ``indices``)."""
    path = Path(path)
    _check_kind(kind, path)
    if kind == "folder":
        return len(_list_folder(path))
    if kind == "dfd-indoor":
        return len(_list_dfd(path))
    with _open_nyu(path) as f:
        return int(f["images"].shape[0])


def _select(n: int, indices: Sequence[int] | None) -> list[int]:
    if indices is None:
        return list(range(n))
    bad = [i for i in indices if not 0 <= i < n]
    if bad:
        raise ValueError(f"indices {bad} out of range for {n} samples")
    return list(indices)


def iter_rgbd(
    kind: RGBDKind,
    path: str | os.PathLike[str],
    *,
    depth_scale: float | None = None,
    indices: Sequence[int] | None = None,
    protocol: bool | None = None,
    max_valid_depth_m: float | None = None,
    camera: ThinLens | None = None,
    focus_m: Sequence[float] | None = None,
) -> Iterator[RGBDSample]:
    """Yield RGB-D samples (layouts and protocols in the module docstring).

    Args:
        kind: ``"folder"``, ``"dfd-indoor"`` or ``"nyu-mat"``.
        path: the folder (folder, dfd-indoor) or the ``.mat`` file (nyu-mat).
        depth_scale: metres per stored unit of integer depth images (``"folder"`` only; dfd-indoor is
            millimetres and nyu-mat metres by definition).
        indices: 0-based positions in the sorted sample list to read (default: all).
        protocol: apply the paper's resolution/clipping protocol; default on for dfd-indoor and
            nyu-mat. ``"folder"`` has no protocol.
        max_valid_depth_m: depth beyond this (metres) is marked invalid (0), e.g. 3.5 for DFD-indoor.
        camera: overrides the kind's camera (``"folder"`` has none by default).
        focus_m: overrides the kind's focus distances in metres.

    Yields:
        :class:`RGBDSample` per selected sample, in sorted order.

    Raises:
        ValueError: unknown kind, missing/mismatched files, bad options.
    """
    path = Path(path)
    _check_kind(kind, path)
    if kind == "folder" and protocol:
        raise ValueError("the 'folder' kind has no paper protocol; resize the data yourself")
    if kind != "folder" and depth_scale is not None:
        raise ValueError(f"depth_scale applies to the 'folder' kind only ({kind} has fixed units)")
    if max_valid_depth_m is not None and not max_valid_depth_m > 0:
        raise ValueError(f"max_valid_depth_m must be > 0 metres, got {max_valid_depth_m}")
    use_protocol = kind != "folder" if protocol is None else protocol
    samples = _iter_kind(kind, path, depth_scale, indices, use_protocol, max_valid_depth_m)
    return _with_overrides(samples, camera, None if focus_m is None else [float(x) for x in focus_m])


def _with_overrides(
    samples: Iterator[RGBDSample], camera: ThinLens | None, focus_m: list[float] | None
) -> Iterator[RGBDSample]:
    for sample in samples:
        if camera is not None:
            sample.camera = camera
        if focus_m is not None:
            sample.focus_m = list(focus_m)
        yield sample


def _iter_kind(
    kind: str,
    path: Path,
    depth_scale: float | None,
    indices: Sequence[int] | None,
    protocol: bool,
    max_valid_depth_m: float | None,
) -> Iterator[RGBDSample]:
    if kind == "folder":
        pairs = _list_folder(path)
        if not pairs:
            raise ValueError(f"no RGB + depth pairs found in {path} (see focalstack.data.rgbd for the rules)")
        for i in _select(len(pairs), indices):
            name, rgb_path, depth_path = pairs[i]
            rgb = read_image(rgb_path)
            depth = read_depth_file(depth_path, depth_scale)
            _check_same_size(name, rgb, depth)
            meta = {
                "dataset": "folder",
                "rgb": str(rgb_path),
                "depth": str(depth_path),
                "depth_scale": depth_scale,
            }
            yield RGBDSample(name, rgb, _invalidate_beyond(depth, max_valid_depth_m), None, None, meta)
    elif kind == "dfd-indoor":
        scenes = _list_dfd(path)
        camera, focus, info = _dfd_protocol(path)
        for i in _select(len(scenes), indices):
            yield _load_dfd(scenes[i], camera, focus, info, protocol, max_valid_depth_m)
    else:
        with _open_nyu(path) as f:
            for i in _select(int(f["images"].shape[0]), indices):
                yield _load_nyu(f, i, protocol, max_valid_depth_m)
