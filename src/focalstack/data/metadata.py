"""Focus distances and camera parameters of loose image files: EXIF, then file names, then a sidecar.

Focus distances (:func:`infer_focus_distances`), first source that gives a value for every file wins:

1. ``exif``: EXIF ``SubjectDistance`` (0x9206, metres). 0 ("unknown") and infinity count as missing.
2. ``filename``: one distance in each file's name (stem, case-insensitive), either
   - a number with a unit: ``img_1.5m.jpg``, ``focus_1500mm.png``, ``shot-35cm.jpg``, ``1p5m.jpg``
     (``p`` may stand for the decimal point); units ``m``, ``cm``, ``mm``;
   - or a unit-less number in metres after ``d``, ``dist``, ``distance`` or ``focus`` (optionally
     followed by ``_`` or ``-``): ``d0.8.jpg``, ``focus_2.png``, ``scene_dist-1.25.jpg``.
   A name with several candidate numbers of the same kind is ambiguous and counts as missing.
3. ``sidecar``: ``focus.txt`` next to the first file: either one distance per line in the order of
   the files, or ``<file name> <distance>`` per line; distances in metres unless suffixed with
   ``m``/``cm``/``mm``; blank lines and ``#`` comments are ignored.

Every source must give distinct distances (a focal stack with two equal focus settings is not one).

Camera (:func:`infer_camera`): EXIF ``FocalLength`` (0x920A, mm), ``FNumber`` (0x829D) and the pixel
pitch from ``FocalPlaneXResolution`` / ``FocalPlaneResolutionUnit`` (0xA20E / 0xA210, scaled to the
file's actual width when ``PixelXDimension`` says it was resized), else estimated from
``FocalLengthIn35mmFilm`` (0xA405): crop factor ``f35 / f``, sensor diagonal ``43.27 mm / crop``,
pitch = diagonal / image diagonal in pixels (assumes the image spans the whole sensor).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

EXIF_IFD = 0x8769
SUBJECT_DISTANCE = 0x9206
FOCAL_LENGTH = 0x920A
F_NUMBER = 0x829D
FOCAL_PLANE_X_RES = 0xA20E
FOCAL_PLANE_RES_UNIT = 0xA210
FOCAL_LENGTH_35MM = 0xA405
PIXEL_X_DIMENSION = 0xA002

#: FocalPlaneResolutionUnit code -> metres (2 = inch, 3 = cm; 4 = mm and 5 = um are non-standard).
RESOLUTION_UNIT_M = {2: 0.0254, 3: 0.01, 4: 1e-3, 5: 1e-6}
#: Diagonal of a 36 x 24 mm frame, metres.
FULL_FRAME_DIAGONAL_M = math.hypot(0.036, 0.024)
SIDECAR_NAME = "focus.txt"

_UNIT_M = {"m": 1.0, "cm": 0.01, "mm": 1e-3}
_NUMBER = r"(\d+(?:[.p]\d+)?)"
_WITH_UNIT = re.compile(rf"(?<![a-z0-9.]){_NUMBER}\s*(mm|cm|m)(?![a-z0-9])")
_PREFIXED = re.compile(rf"(?<![a-z])(?:distance|dist|focus|d)[_-]?{_NUMBER}(?![a-z0-9])")

PathLike = str | os.PathLike[str]


def _number(text: str) -> float:
    return float(text.replace("p", "."))


def _exif(path: PathLike) -> tuple[dict[int, Any], tuple[int, int]]:
    """The Exif sub-IFD of an image (empty when absent) and the image size (W, H)."""
    with Image.open(path) as im:
        exif = im.getexif()
        return dict(exif.get_ifd(EXIF_IFD)) if exif else {}, im.size


def _positive(value: Any) -> float | None:
    """A finite positive float from an EXIF value, else None (0 = unknown, inf = infinity)."""
    try:
        v = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def focus_from_exif(path: PathLike) -> float | None:
    """EXIF SubjectDistance of one image in metres, or None when absent, unknown or infinite."""
    tags, _ = _exif(path)
    return _positive(tags.get(SUBJECT_DISTANCE))


def focus_from_filename(path: PathLike) -> float | None:
    """The focus distance (metres) written in a file name (patterns in the module docstring), or None."""
    stem = Path(path).stem.lower()
    with_unit = _WITH_UNIT.findall(stem)
    if len(with_unit) == 1:
        value, unit = with_unit[0]
        return _number(value) * _UNIT_M[unit]
    if with_unit:
        return None
    prefixed = _PREFIXED.findall(stem)
    if len(prefixed) == 1 and _number(prefixed[0]) > 0:
        return _number(prefixed[0])
    return None


def _parse_distance(token: str) -> float:
    m = re.fullmatch(rf"{_NUMBER}\s*(mm|cm|m)?", token.strip().lower())
    if m is None:
        raise ValueError(f"cannot read a distance from {token!r}")
    return _number(m.group(1)) * _UNIT_M[m.group(2) or "m"]


def focus_from_sidecar(paths: Sequence[PathLike]) -> list[float] | None:
    """Focus distances from ``focus.txt`` next to the first file (format in the module docstring).

    Returns:
        One distance (metres) per path in order, or None when there is no sidecar.

    Raises:
        ValueError: the sidecar exists but cannot be read or does not cover every file.
    """
    sidecar = Path(paths[0]).parent / SIDECAR_NAME
    if not sidecar.is_file():
        return None
    lines = [ln.split("#", 1)[0].strip() for ln in sidecar.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    try:
        if all(len(ln.split()) == 1 for ln in lines):
            values = [_parse_distance(ln) for ln in lines]
            if len(values) != len(paths):
                raise ValueError(f"it lists {len(values)} distances for {len(paths)} files")
            return values
        table = {}
        for ln in lines:
            name, _, dist = ln.rpartition(" ")
            table[name.strip()] = _parse_distance(dist)
        missing = [Path(p).name for p in paths if Path(p).name not in table]
        if missing:
            raise ValueError(f"no entry for {missing}")
        return [table[Path(p).name] for p in paths]
    except ValueError as e:
        raise ValueError(f"{sidecar}: {e}") from None


def _usable(values: Sequence[float | None]) -> bool:
    present = [v for v in values if v is not None]
    return len(present) == len(values) and all(v > 0 for v in present) and len(set(present)) == len(present)


def infer_focus_distances(paths: Sequence[PathLike]) -> tuple[list[float] | None, str]:
    """Focus distance of every image, from the first source that knows all of them.

    Args:
        paths: image files of one focal stack, in stack order.

    Returns:
        ``(distances_m, source)``: one distance per path in metres and ``"exif"``, ``"filename"`` or
        ``"sidecar:<path>"``; or ``(None, "none")`` when no source covers every file with distinct
        values.

    Raises:
        ValueError: empty ``paths`` or a malformed sidecar.
    """
    if not paths:
        raise ValueError("no image paths given")
    exif = [focus_from_exif(p) for p in paths]
    if _usable(exif):
        return [float(v) for v in exif], "exif"
    names = [focus_from_filename(p) for p in paths]
    if _usable(names):
        return [float(v) for v in names], "filename"
    side = focus_from_sidecar(paths)
    if side is not None and _usable(side):
        return side, f"sidecar:{Path(paths[0]).parent / SIDECAR_NAME}"
    return None, "none"


def _pixel_pitch(
    tags: dict[int, Any], size: tuple[int, int], focal_mm: float | None
) -> tuple[float, str] | None:
    """Pixel pitch (metres, at the file's resolution) from EXIF, and how it was obtained."""
    width, height = size
    xres = _positive(tags.get(FOCAL_PLANE_X_RES))
    unit_m = RESOLUTION_UNIT_M.get(int(tags.get(FOCAL_PLANE_RES_UNIT, 2)))
    if xres is not None and unit_m is not None:
        # FocalPlaneXResolution refers to the pixels the camera wrote; rescale if the file was resized.
        native_width = _positive(tags.get(PIXEL_X_DIMENSION)) or width
        return unit_m / xres * native_width / width, "exif FocalPlaneXResolution"
    f35 = _positive(tags.get(FOCAL_LENGTH_35MM))
    if f35 is not None and focal_mm is not None:
        sensor_diag_m = FULL_FRAME_DIAGONAL_M * focal_mm / f35
        return sensor_diag_m / math.hypot(width, height), "estimate from exif FocalLengthIn35mmFilm"
    return None


def infer_camera(paths: Sequence[PathLike]) -> tuple[dict[str, float], str]:
    """Camera parameters from EXIF (the first file that has each value).

    Args:
        paths: image files of one focal stack.

    Returns:
        ``(camera, source)``: ``camera`` has any of ``focal_length_m``, ``f_number``, ``pixel_size_m``
        (metres, pitch at the files' resolution; the ``scene.json`` camera dict); ``source`` says where
        each came from, e.g. ``"focal_length_m: exif; f_number: exif; pixel_size_m: estimate from exif
        FocalLengthIn35mmFilm"``, or ``"none"``.
    """
    if not paths:
        raise ValueError("no image paths given")
    camera: dict[str, float] = {}
    sources: dict[str, str] = {}
    for path in paths:
        tags, size = _exif(path)
        focal_mm = _positive(tags.get(FOCAL_LENGTH))
        if focal_mm is not None and "focal_length_m" not in camera:
            camera["focal_length_m"], sources["focal_length_m"] = focal_mm * 1e-3, "exif"
        f_number = _positive(tags.get(F_NUMBER))
        if f_number is not None and "f_number" not in camera:
            camera["f_number"], sources["f_number"] = f_number, "exif"
        pitch = _pixel_pitch(tags, size, focal_mm)
        if pitch is not None and "pixel_size_m" not in camera:
            camera["pixel_size_m"], sources["pixel_size_m"] = pitch
        if len(camera) == 3:
            break
    source = "; ".join(f"{k}: {v}" for k, v in sources.items()) or "none"
    return camera, source
