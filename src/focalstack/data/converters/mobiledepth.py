"""Mobile Depth (Suwajanakorn, Hernandez & Seitz, CVPR 2015, "Depth from Focus with Your Mobile Phone").

Layout: a scene folder holds the aligned frames ``a<N>.jpg`` (``a0.jpg``, ``a1.jpg``, ... or
``a00.jpg``; ordered by N) of a phone focal sweep. Focus distances come from the first of:

1. an explicit ``calibration`` file;
2. ``<scene>/calibrated.txt`` -- the authors' calibration: one ``focal_depth aperture`` line per frame
   (frame order), then a last line with the focal length;
3. ``<scene>/focus_dpth.txt`` -- one focal depth per line (the DFV / DEReD re-organised copy);
4. the original download tree: ``<root>/photos-calibration-results/calibration/<scene>/calibrated.txt``
   next to ``<root>/aligned-focus-stack/...`` (calibration folder names ``metal``, ``GT``, ``GTLarge``,
   ``GTSmall`` for the scenes ``metals``, ``zeromotion``, ``largemotion``, ``smallmotion``).

Units: the calibration is a structure-from-motion result, defined only up to scale; the paper's
authors' code (DEReD) reads the focal depths as inches (divides by 39.37), so the default
``focus_unit_m`` is 0.0254. All-negative depths (the ``metals`` calibration) are negated, as DFV does.
Frames are written in order of decreasing focus distance (far to near); frames with a focus
distance equal to an earlier one are dropped (listed in ``meta``). No metadata gives the camera: the
paper assumed N = 24, f = 50 mm, p = 5.6 um (``paper_camera=True``). There is no ground truth.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from focalstack.data.imageio import read_image
from focalstack.data.stack import FocalStack
from focalstack.optics.camera import ThinLens

INCH_M = 0.0254
PAPER_CAMERA = ThinLens(focal_length_m=0.05, f_number=24.0, pixel_size_m=5.6e-6)
CALIBRATION_NAMES = {
    "metals": "metal",
    "zeromotion": "GT",
    "largemotion": "GTLarge",
    "smallmotion": "GTSmall",
}
_FRAME = re.compile(r"^a(\d+)\.(jpe?g|png)$", re.IGNORECASE)


def list_frames(scene: str | os.PathLike[str]) -> list[Path]:
    """The aligned frames ``a<N>.jpg`` of a scene folder, ordered by N."""
    frames = [
        (int(m.group(1)), p) for p in Path(scene).iterdir() if (m := _FRAME.match(p.name)) and p.is_file()
    ]
    return [p for _, p in sorted(frames)]


def read_calibration(path: str | os.PathLike[str]) -> tuple[list[float], dict[str, float]]:
    """Read ``calibrated.txt`` (``focal_depth aperture`` lines + focal length) or ``focus_dpth.txt``.

    Returns:
        (focal depths in the file's unit, in frame order; extra values: ``aperture``, ``focal_length``).

    Raises:
        ValueError: unreadable file or a line that is not numbers.
    """
    path = Path(path)
    try:
        lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
        rows = [[float(v) for v in ln] for ln in lines]
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read Mobile Depth calibration {path}: {e}") from e
    if not rows:
        raise ValueError(f"Mobile Depth calibration {path} is empty")
    if any(len(r) >= 2 for r in rows):  # calibrated.txt: pairs, then one focal-length line
        pairs, last = rows[:-1], rows[-1]
        if len(last) != 1 or any(len(r) < 2 for r in pairs):
            raise ValueError(f"{path}: expected 'focal_depth aperture' lines and a final focal-length line")
        return [r[0] for r in pairs], {"aperture": pairs[0][1], "focal_length": last[0]}
    return [r[0] for r in rows], {}


def find_calibration(scene: Path) -> Path | None:
    """The calibration file of a scene folder (search order in the module docstring), or None."""
    for name in ("calibrated.txt", "focus_dpth.txt"):
        if (scene / name).is_file():
            return scene / name
    calib_name = CALIBRATION_NAMES.get(scene.name, scene.name)
    for parent in scene.parents:
        candidate = parent / "photos-calibration-results" / "calibration" / calib_name / "calibrated.txt"
        if candidate.is_file():
            return candidate
    return None


def find_scenes(src: str | os.PathLike[str]) -> list[Path]:
    """Scene folders (holding ``a<N>.jpg`` frames) at or below ``src``, sorted."""
    src = Path(src)
    if not src.is_dir():
        raise ValueError(f"{src} is not a directory")
    if list_frames(src):
        return [src]
    scenes = sorted({p.parent for p in src.rglob("a*.*") if _FRAME.match(p.name)})
    if not scenes:
        raise ValueError(f"no Mobile Depth scene (folder with a<N>.jpg frames) under {src}")
    return scenes


def _order_by_focus(focus: np.ndarray) -> tuple[list[int], list[int]]:
    """Frame indices by decreasing focus distance, and the indices dropped as duplicates."""
    order = sorted(range(len(focus)), key=lambda i: (-focus[i], i))
    kept, dropped = [order[0]], []
    for i in order[1:]:
        (dropped if focus[i] == focus[kept[-1]] else kept).append(i)
    return kept, sorted(dropped)


def convert_mobiledepth_scene(
    scene: str | os.PathLike[str],
    *,
    calibration: str | os.PathLike[str] | None = None,
    focus_unit_m: float = INCH_M,
    num_slices: int | None = None,
    paper_camera: bool = True,
) -> FocalStack:
    """Read one Mobile Depth scene as a focal stack.

    Args:
        scene: scene folder with ``a<N>.jpg`` frames.
        calibration: calibration file (default: searched, see the module docstring).
        focus_unit_m: metres per unit of the calibration's focal depths.
        num_slices: keep this many frames, evenly spread over the (ordered) sweep; default all.
        paper_camera: attach the camera the paper assumed (N = 24, f = 50 mm, p = 5.6 um).

    Returns:
        :class:`FocalStack` named ``mobiledepth_<scene>``; focus None when no calibration is found.
    """
    scene = Path(scene)
    frames = list_frames(scene)
    if len(frames) < 2:
        raise ValueError(f"Mobile Depth scene {scene} has {len(frames)} a<N>.jpg frames; need at least 2")
    if not focus_unit_m > 0:
        raise ValueError(f"focus_unit_m must be > 0, got {focus_unit_m}")
    calib_path = Path(calibration) if calibration is not None else find_calibration(scene)
    meta: dict[str, Any] = {
        "source": "Mobile Depth (Suwajanakorn et al. 2015), aligned frames",
        "scene": scene.name,
        "ground_truth": None,
    }
    order, focus = list(range(len(frames))), None
    if calib_path is not None:
        depths, extra = read_calibration(calib_path)
        if len(depths) != len(frames):
            raise ValueError(
                f"{calib_path} lists {len(depths)} focal depths for {len(frames)} frames in {scene}"
            )
        raw = np.asarray(depths, dtype=np.float64)
        if (raw < 0).all():
            raw = -raw
        if (raw <= 0).any():
            raise ValueError(
                f"{calib_path}: focal depths must all be positive (or all negative), got {depths}"
            )
        order, dropped = _order_by_focus(raw)
        focus = raw * focus_unit_m
        meta.update(
            calibration=str(calib_path),
            calibration_values=extra,
            focus_unit_m=focus_unit_m,
            focus_note="calibration is up to scale; metric values assume the unit above",
            dropped_duplicate_frames=[frames[i].name for i in dropped],
        )
    else:
        meta["focus_note"] = "no calibration found: focus unknown, frames in file order"
    if num_slices is not None:
        if not 2 <= num_slices <= len(order):
            raise ValueError(f"num_slices must be in [2, {len(order)}], got {num_slices}")
        order = [order[int(round(k))] for k in np.linspace(0, len(order) - 1, num_slices)]
    images = torch.stack([read_image(frames[i]) for i in order])
    meta["frames"] = [frames[i].name for i in order]
    camera = PAPER_CAMERA if paper_camera else None
    if camera is not None:
        meta["camera_note"] = "assumed by the paper (no metadata): N = 24, f = 50 mm, p = 5.6 um"
    focus_m = None if focus is None else [float(focus[i]) for i in order]
    return FocalStack(images, focus_m, camera, None, None, f"mobiledepth_{scene.name}", meta)


def iter_mobiledepth(src: str | os.PathLike[str], **kwargs: Any) -> Iterator[FocalStack]:
    """Convert every Mobile Depth scene at or below ``src``; kwargs: :func:`convert_mobiledepth_scene`."""
    for scene in find_scenes(src):
        yield convert_mobiledepth_scene(scene, **kwargs)
