"""The :class:`FocalStack` type and the scene-folder interchange format.

A scene folder (see ``../shared/data/README.md`` and docs/CONVENTIONS.md) holds ``stack_XX.<png|jpg>``
slices in focus order, ``scene.json`` (``focus_distances_m`` or null, a possibly partial ``camera``
dict, free-form notes), and optionally ``aif.png`` and ``depth.npy`` (metres, float32, H x W).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from focalstack.data.imageio import read_image, read_images, write_image
from focalstack.optics.camera import ThinLens
from focalstack.utils.io import atomic_path, atomic_write

_STACK_FILE = re.compile(r"^stack_(\d+)\.(png|jpe?g|tiff?|bmp|webp)$", re.IGNORECASE)
_CAMERA_KEYS = ("focal_length_m", "f_number", "pixel_size_m")
# A resize whose two axis factors differ by more than this has no single pixel pitch.
_ANISOTROPY_TOL = 0.02


def _as_focus(focus: Any) -> torch.Tensor | None:
    if focus is None:
        return None
    if isinstance(focus, torch.Tensor):
        return focus.detach().to(torch.float64)
    try:
        return torch.as_tensor(np.asarray(focus, dtype=np.float64))
    except (TypeError, ValueError) as e:
        raise ValueError(f"focus distances must be numbers in metres, got {focus!r}") from e


def _fmt(values: torch.Tensor) -> str:
    return "[" + ", ".join(f"{float(v):.4g}" for v in values) + "]"


def _camera_from_dict(raw: Any) -> ThinLens | None:
    """A ThinLens when the scene.json camera dict is complete, else None (partial cameras are kept raw)."""
    if not isinstance(raw, dict) or any(raw.get(k) is None for k in _CAMERA_KEYS):
        return None
    return ThinLens.from_dict(raw)


def _jsonable(obj: Any) -> Any:
    """Recursively convert tensors, arrays, paths and dataclasses into JSON types."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def read_focus_file(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read focus distances from a text file.

    One distance per line, or several per line separated by commas and/or whitespace; ``#`` starts a
    comment. Values are metres, in slice order.

    Returns:
        (S,) float64 focus distances in metres.

    Raises:
        ValueError: missing file, an unparsable token (naming file, line and token), or no values.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"cannot read focus file {path}: {e.strerror or e}") from e
    values: list[float] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        for token in re.split(r"[,\s]+", line.split("#", 1)[0].strip()):
            if not token:
                continue
            try:
                values.append(float(token))
            except ValueError:
                raise ValueError(
                    f"focus file {path} line {lineno}: cannot parse {token!r} as a distance in metres"
                ) from None
    if not values:
        raise ValueError(f"focus file {path} contains no focus distances")
    return torch.tensor(values, dtype=torch.float64)


def _stack_files(folder: Path) -> list[Path]:
    """``stack_XX.*`` files of a scene folder, sorted by their number."""
    by_index: dict[int, Path] = {}
    for p in folder.iterdir():
        m = _STACK_FILE.match(p.name)
        if not m or not p.is_file():
            continue
        idx = int(m.group(1))
        if idx in by_index:
            raise ValueError(
                f"scene folder {folder}: two files for slice {idx}: {by_index[idx].name}, {p.name}"
            )
        by_index[idx] = p
    return [by_index[i] for i in sorted(by_index)]


@dataclass(eq=False)
class FocalStack:
    """A focal stack with what is known about it.

    Attributes:
        images: (S, 3, H, W) float32 sRGB values in [0, 1], S >= 2, in focus order.
        focus_m: (S,) float64 focus distances in metres, strictly monotonic (either direction);
            None when unknown (then only the slice order is known). Lists are converted.
        camera: the thin-lens camera, only when complete; the raw (possibly partial) dict from
            scene.json is kept in ``meta["camera"]``.
        depth_m: (H, W) ground-truth depth in metres, 0 where invalid; or None.
        aif: (3, H, W) ground-truth all-in-focus image (sRGB [0, 1]); or None.
        name: scene name (the folder name when loaded).
        meta: everything else from scene.json (source, notes, ``depth_range_m``, ...); JSON-serialisable.

    Raises:
        ValueError: on construction, naming the first inconsistency found.
    """

    images: torch.Tensor
    focus_m: torch.Tensor | None = None
    camera: ThinLens | None = None
    depth_m: torch.Tensor | None = None
    aif: torch.Tensor | None = None
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.focus_m = _as_focus(self.focus_m)
        self._check_images()
        self._check_focus()
        self._check_ground_truth()
        if not isinstance(self.meta, dict):
            raise ValueError(f"meta must be a dict, got {type(self.meta).__name__}")

    def _check_images(self) -> None:
        im = self.images
        if not isinstance(im, torch.Tensor) or im.dim() != 4 or im.shape[1] != 3:
            shape = tuple(im.shape) if isinstance(im, torch.Tensor) else type(im).__name__
            raise ValueError(f"images must be an (S, 3, H, W) tensor, got {shape}")
        if im.shape[0] < 2:
            raise ValueError(f"a focal stack needs at least 2 slices, got {im.shape[0]}")
        if not im.is_floating_point():
            raise ValueError(f"images must be floating point sRGB values in [0, 1], got {im.dtype}")
        if im.numel() == 0:
            raise ValueError(f"images are empty: {tuple(im.shape)}")
        lo, hi = (float(v) for v in torch.aminmax(im))  # NaN propagates: one pass checks both
        if math.isnan(lo) or math.isnan(hi):
            raise ValueError("images contain NaN")
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"images must be sRGB values in [0, 1], got range [{lo:.4g}, {hi:.4g}]")

    def _check_focus(self) -> None:
        if self.camera is not None and not isinstance(self.camera, ThinLens):
            raise ValueError(f"camera must be a ThinLens or None, got {type(self.camera).__name__}")
        f = self.focus_m
        if f is None:
            return
        if f.dim() != 1 or f.numel() != self.num_slices:
            raise ValueError(
                f"need one focus distance per slice: {self.num_slices} slices, focus {tuple(f.shape)}"
            )
        if not torch.isfinite(f).all() or (f <= 0).any():
            raise ValueError(f"focus distances must be finite and > 0 metres, got {_fmt(f)}")
        if torch.unique(f).numel() != f.numel():
            raise ValueError(f"duplicate focus distances: {_fmt(f)}")
        step = f[1:] - f[:-1]
        if not ((step > 0).all() or (step < 0).all()):
            raise ValueError(f"focus distances must be monotonic (increasing or decreasing), got {_fmt(f)}")
        if self.camera is not None and (f <= self.camera.focal_length_m).any():
            raise ValueError(
                f"focus distances must exceed the focal length {self.camera.focal_length_m:.4g} m, "
                f"got {_fmt(f)}"
            )

    def _check_ground_truth(self) -> None:
        H, W = self.size
        if self.depth_m is not None:
            d = self.depth_m
            if d.shape != (H, W) or not d.is_floating_point():
                raise ValueError(f"depth_m must be a float ({H}, {W}) tensor, got {d.dtype} {tuple(d.shape)}")
            if not torch.isfinite(d).all() or (d < 0).any():
                raise ValueError("depth_m must be finite and >= 0 metres (0 = invalid)")
        if self.aif is not None:
            a = self.aif
            if a.shape != (3, H, W) or not a.is_floating_point():
                raise ValueError(f"aif must be a float (3, {H}, {W}) tensor, got {a.dtype} {tuple(a.shape)}")
            if not torch.isfinite(a).all():
                raise ValueError("aif contains NaN or infinite values")

    # ------------------------------------------------------------------ properties

    @property
    def num_slices(self) -> int:
        """Number of slices S."""
        return int(self.images.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """Image size ``(H, W)`` in pixels."""
        return int(self.images.shape[-2]), int(self.images.shape[-1])

    def __repr__(self) -> str:
        H, W = self.size
        focus = "unknown" if self.focus_m is None else _fmt(self.focus_m)
        return (
            f"FocalStack(name={self.name!r}, slices={self.num_slices}, size={H}x{W}, focus_m={focus}, "
            f"camera={self.camera}, depth={'yes' if self.depth_m is not None else 'no'}, "
            f"aif={'yes' if self.aif is not None else 'no'})"
        )

    # ------------------------------------------------------------------ construction

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> FocalStack:
        """Read a scene folder: numbered ``stack_XX.*`` files, ``scene.json``, ``aif.png``, ``depth.npy``.

        ``scene.json`` is optional (then focus and camera are unknown). Non-finite values in
        ``depth.npy`` are read as 0 (invalid).

        Raises:
            ValueError: naming the folder and the problem.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"scene folder {folder} does not exist")
        files = _stack_files(folder)
        if len(files) < 2:
            raise ValueError(f"scene folder {folder}: need at least 2 stack_XX images, found {len(files)}")
        scene_file = folder / "scene.json"
        try:
            scene = json.loads(scene_file.read_text()) if scene_file.is_file() else {}
        except json.JSONDecodeError as e:
            raise ValueError(f"scene folder {folder}: scene.json is not valid JSON: {e}") from e
        if not isinstance(scene, dict):
            raise ValueError(f"scene folder {folder}: scene.json must hold a JSON object")
        try:
            images = read_images(files)
            meta = {k: v for k, v in scene.items() if k != "focus_distances_m"}
            depth = aif = None
            if (folder / "depth.npy").is_file():
                arr = np.load(folder / "depth.npy", allow_pickle=False).astype(np.float32)
                depth = torch.from_numpy(np.where(np.isfinite(arr), arr, np.float32(0.0)))
            if (folder / "aif.png").is_file():
                aif = read_image(folder / "aif.png")
            return cls(
                images=images,
                focus_m=scene.get("focus_distances_m"),
                camera=_camera_from_dict(scene.get("camera")),
                depth_m=depth,
                aif=aif,
                name=folder.name,
                meta=meta,
            )
        except ValueError as e:
            raise ValueError(f"scene folder {folder}: {e}") from e

    @classmethod
    def from_files(
        cls,
        paths: Sequence[str | os.PathLike[str]],
        focus_m: Sequence[float] | torch.Tensor | None = None,
        camera: ThinLens | None = None,
        name: str | None = None,
    ) -> FocalStack:
        """Build a stack from image files given in focus order.

        Args:
            paths: S >= 2 image files, all the same size.
            focus_m: (S,) focus distances in metres, or None when unknown.
            camera: the camera, if known.
            name: scene name (default: the first file's stem).
        """
        paths = [Path(p) for p in paths]
        if len(paths) < 2:
            raise ValueError(f"a focal stack needs at least 2 image files, got {len(paths)}")
        images = read_images(paths)
        meta: dict[str, Any] = {"source": "image files", "files": [str(p) for p in paths]}
        if focus_m is not None:
            meta["focus_source"] = "given"
        if camera is not None:
            meta["camera"] = camera.to_dict()
        return cls(images, focus_m, camera, name=paths[0].stem if name is None else name, meta=meta)

    # ------------------------------------------------------------------ writing

    def save(self, folder: str | os.PathLike[str], bits: int = 8, overwrite: bool = False) -> Path:
        """Write the scene folder; it appears complete or not at all.

        The files are written into a temporary sibling folder that is then renamed into place.

        Args:
            folder: destination scene folder.
            bits: 8 or 16 bits per channel for ``stack_XX.png`` and ``aif.png``.
            overwrite: replace an existing folder (otherwise it is an error).

        Returns:
            ``Path(folder)``.

        Raises:
            FileExistsError: ``folder`` exists and ``overwrite`` is False.
            ValueError: bad ``bits`` or a meta value that cannot be written as JSON.
        """
        folder = Path(folder)
        if bits not in (8, 16):
            raise ValueError(f"bits must be 8 or 16, got {bits}")
        if folder.exists() and not overwrite:
            raise FileExistsError(f"{folder} exists (pass overwrite=True to replace it)")
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the scene folder should not be
        try:
            self._write_files(tmp, bits)
            _replace_dir(tmp, folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return folder

    def _write_files(self, folder: Path, bits: int) -> None:
        width = max(2, len(str(self.num_slices - 1)))
        for i, img in enumerate(self.images):
            write_image(folder / f"stack_{i:0{width}d}.png", img, bits=bits)
        if self.aif is not None:
            write_image(folder / "aif.png", self.aif, bits=bits)
        if self.depth_m is not None:
            depth = self.depth_m.detach().to("cpu", torch.float32).numpy()
            with atomic_path(folder / "depth.npy") as p, open(p, "wb") as fh:
                np.save(fh, depth)
        scene = {
            "focus_distances_m": None if self.focus_m is None else [float(f) for f in self.focus_m],
            "camera": self._camera_dict(),
            **{k: v for k, v in self.meta.items() if k not in ("focus_distances_m", "camera")},
        }
        try:
            text = json.dumps(_jsonable(scene), indent=2, allow_nan=False) + "\n"
        except (TypeError, ValueError) as e:
            raise ValueError(f"scene {self.name!r}: meta cannot be written as JSON: {e}") from e
        atomic_write(folder / "scene.json", lambda p: p.write_text(text))

    def _camera_dict(self) -> dict[str, Any]:
        raw = self.meta.get("camera")
        raw = dict(raw) if isinstance(raw, dict) else {}
        return {**raw, **self.camera.to_dict()} if self.camera is not None else raw

    # ------------------------------------------------------------------ derived stacks

    def _derived(self, note: str, meta_updates: dict[str, Any] | None = None, **changes: Any) -> FocalStack:
        """A copy with ``changes`` applied and ``note`` appended to ``meta["history"]``."""
        history = [*self.meta.get("history", []), note]
        meta = {**self.meta, **(meta_updates or {}), "history": history}
        return dataclasses.replace(self, meta=meta, **changes)

    def resized(self, scale: float | None = None, size: tuple[int, int] | None = None) -> FocalStack:
        """Resample to ``scale`` times the size, or to ``size = (H, W)`` pixels (give exactly one).

        Images use antialiased bilinear resampling; depth uses nearest neighbours (no mixed depths
        at edges, invalid 0 stays 0). The camera's pixel pitch is divided by the resize factor.

        Raises:
            ValueError: neither or both given, a non-positive size, or (with a camera) an
                anisotropic resize, which has no single pixel pitch.
        """
        H, W = self.size
        if (scale is None) == (size is None):
            raise ValueError("give exactly one of scale or size")
        if scale is not None:
            if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
                raise ValueError(f"resize scale must be a finite number > 0, got {scale!r}")
            size = (max(1, round(H * scale)), max(1, round(W * scale)))
        h, w = (int(v) for v in size)
        if h < 1 or w < 1:
            raise ValueError(f"resize size must be positive, got {size}")
        fy, fx = h / H, w / W
        if self.camera is not None and abs(fy / fx - 1.0) > _ANISOTROPY_TOL:
            raise ValueError(
                f"anisotropic resize {H}x{W} -> {h}x{w} (factors {fy:.4g}, {fx:.4g}) "
                "has no single pixel pitch"
            )
        factor = math.sqrt(fy * fx)

        def resample(x: torch.Tensor) -> torch.Tensor:
            out = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
            return out.clamp(0.0, 1.0)

        camera = self.camera.scaled(factor) if self.camera is not None else None
        raw = self.meta.get("camera")
        meta_camera = dict(raw) if isinstance(raw, dict) else raw
        if camera is not None:
            meta_camera = {**(meta_camera or {}), **camera.to_dict()}
        elif isinstance(meta_camera, dict) and isinstance(meta_camera.get("pixel_size_m"), (int, float)):
            meta_camera["pixel_size_m"] = meta_camera["pixel_size_m"] / factor
        depth = None
        if self.depth_m is not None:
            depth = F.interpolate(self.depth_m[None, None], size=(h, w), mode="nearest-exact")[0, 0]
        return self._derived(
            f"resized {H}x{W} -> {h}x{w}",
            None if meta_camera is None else {"camera": meta_camera},
            images=resample(self.images),
            camera=camera,
            depth_m=depth,
            aif=None if self.aif is None else resample(self.aif[None])[0],
        )

    def cropped(self, box: tuple[int, int, int, int]) -> FocalStack:
        """Crop every image to ``box = (top, left, height, width)`` pixels; the camera is unchanged."""
        H, W = self.size
        if len(box) != 4 or not all(isinstance(v, (int, np.integer)) for v in box):
            raise ValueError(f"crop box must be 4 integers (top, left, height, width), got {box!r}")
        top, left, h, w = (int(v) for v in box)
        if top < 0 or left < 0 or h < 1 or w < 1 or top + h > H or left + w > W:
            raise ValueError(
                f"crop box (top={top}, left={left}, height={h}, width={w}) is outside the {H}x{W} image"
            )
        rows, cols = slice(top, top + h), slice(left, left + w)
        return self._derived(
            f"cropped top={top} left={left} {h}x{w} from {H}x{W}",
            images=self.images[..., rows, cols],
            depth_m=None if self.depth_m is None else self.depth_m[rows, cols],
            aif=None if self.aif is None else self.aif[:, rows, cols],
        )

    def to(self, device: torch.device | str) -> FocalStack:
        """The same stack with every tensor on ``device``."""

        def move(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.to(device)

        return dataclasses.replace(
            self,
            images=self.images.to(device),
            focus_m=move(self.focus_m),
            depth_m=move(self.depth_m),
            aif=move(self.aif),
        )


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished folder ``src`` to ``dst``, replacing an existing ``dst`` with a quick swap."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
    os.replace(dst, old / dst.name)
    try:
        os.replace(src, dst)
    except OSError:
        os.replace(old / dst.name, dst)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
