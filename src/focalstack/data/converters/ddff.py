"""DDFF-12 (Hazirbas et al., ACCV 2018, "Deep Depth From Focus") HDF5 files -> scene folders.

Layout (``ddff-dataset-trainval.h5`` / ``ddff-dataset-test.h5`` and the DFV re-packs of them):

- ``stack_<split>``: (N, 10, H, W, 3) RGB focal stacks, 383 x 552 pixels, uint8 (DFV's re-pack stores
  float32 0..255; floats above 1 are read as 0..255).
- ``disp_<split>``: (N, H, W) or (N, 1, H, W) float disparity in pixels of the Lytro sub-aperture views;
  0 = no depth. Absent for ``test``.
- ``AiF_<split>`` (DFV re-pack only): (N, H, W, 3) centre sub-aperture view, used as the AIF.

The stacks were made by synthetic-aperture refocusing of Lytro ILLUM light fields (ddff-toolbox
``refocus.py``): 10 focus disparities ``linspace(bf / 0.5, bf / 7, 10)``, so slice i is focused at
``1 / linspace(1 / 0.5, 1 / 7, 10)[i]`` metres (0.5 m first, 7 m last) whatever ``bf``.

Depth: ``depth_m = bf / disparity`` with ``bf = baseline * f_subaperture`` (metres x pixels). The
toolbox computes ``baseline = K2 / max(fx, fy) * 1e-3`` from its calibration ``IntParamLF.mat`` and
``f_subaperture = 521.4052`` px; the default ``bf`` uses K2 = 1982.0250823695178 and max(fx, fy) =
7317.020641763665 as quoted in the DEReD code of the paper's authors (``bf`` = 0.14124 m px).
Note DEReD pairs slices with ``linspace(0.02, 0.28)`` (far first), the reverse of the toolbox order.

Equivalent thin lens (as for HCI, see :mod:`.hci`): sub-aperture baseline ``b = bf / 521.4052`` px,
an assumed 9 x 9 view grid, aperture ``A = 4 b sqrt((9^2 - 1) / 12)``; the blur in pixels depends only
on ``A * f_px``, so a nominal pixel pitch of 20 um (about the ILLUM micro-lens pitch) fixes
``f = 521.4052 * p``. DDFF defocus is small: at most about 0.7 px Gaussian std.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from focalstack.data.stack import FocalStack
from focalstack.optics.camera import ThinLens

DDFF_K2_MM = 1982.0250823695178
DDFF_FLENS_PX = 7317.020641763665
DDFF_SUBAPERTURE_FOCAL_PX = 521.4052
#: baseline (m) x sub-aperture focal length (px), the disparity <-> depth constant.
DDFF_BASELINE_FOCAL_M_PX = DDFF_K2_MM / DDFF_FLENS_PX * 1e-3 * DDFF_SUBAPERTURE_FOCAL_PX
DDFF_FOCUS_RANGE_M = (0.5, 7.0)
DDFF_NUM_SLICES = 10
DDFF_GRID = 9
DDFF_NOMINAL_PIXEL_M = 20e-6
SPLITS = ("train", "val", "test")


def ddff_focus_distances_m(num_slices: int = DDFF_NUM_SLICES) -> list[float]:
    """Focus distances (metres) of the DDFF-12 slices, in stack order (near to far)."""
    near, far = DDFF_FOCUS_RANGE_M
    return [float(1.0 / d) for d in np.linspace(1.0 / near, 1.0 / far, num_slices)]


def ddff_camera(baseline_focal_m_px: float = DDFF_BASELINE_FOCAL_M_PX) -> ThinLens:
    """Equivalent thin lens of the DDFF-12 refocused stacks (module docstring)."""
    baseline_m = baseline_focal_m_px / DDFF_SUBAPERTURE_FOCAL_PX
    aperture_m = 4.0 * baseline_m * math.sqrt((DDFF_GRID**2 - 1) / 12.0)
    focal_m = DDFF_SUBAPERTURE_FOCAL_PX * DDFF_NOMINAL_PIXEL_M
    return ThinLens(focal_m, focal_m / aperture_m, DDFF_NOMINAL_PIXEL_M)


def disparity_to_depth_m(
    disparity_px: torch.Tensor, baseline_focal_m_px: float = DDFF_BASELINE_FOCAL_M_PX
) -> torch.Tensor:
    """DDFF disparity (pixels) -> depth (metres), 0 where the disparity is not positive. Any shape."""
    disp = torch.nan_to_num(disparity_px.double(), nan=0.0)
    return torch.where(disp > 0, baseline_focal_m_px / disp.clamp_min(1e-12), 0.0).float()


def _to_unit(arr: np.ndarray, what: str) -> torch.Tensor:
    """uint8 or float 0..255 (or 0..1) image data -> float32 in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(arr)).float()
    if arr.dtype == np.uint8 or float(x.max()) > 1.0:
        x = x / 255.0
    if not torch.isfinite(x).all():
        raise ValueError(f"{what} contains non-finite values")
    return x.clamp(0.0, 1.0)


def _open(path: Path, split: str) -> Any:
    import h5py

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"cannot open DDFF-12 HDF5 file {path}: {e}") from e
    key = f"stack_{split}"
    if key not in f:
        keys = sorted(f.keys())
        f.close()
        raise ValueError(f"{path} has no {key!r} dataset (keys: {keys})")
    if f[key].ndim != 5 or f[key].shape[-1] != 3:
        shape = f[key].shape
        f.close()
        raise ValueError(f"{path}: {key} must be (N, S, H, W, 3), got {shape}")
    return f


def count_ddff(path: str | os.PathLike[str], split: str = "train") -> int:
    """Number of stacks in the ``split`` of a DDFF-12 HDF5 file."""
    with _open(Path(path), split) as f:
        return int(f[f"stack_{split}"].shape[0])


def iter_ddff(
    path: str | os.PathLike[str],
    *,
    split: str = "train",
    indices: Sequence[int] | None = None,
    baseline_focal_m_px: float = DDFF_BASELINE_FOCAL_M_PX,
) -> Iterator[FocalStack]:
    """Yield the focal stacks of a DDFF-12 HDF5 file.

    Args:
        path: the ``.h5`` file.
        split: ``"train"``, ``"val"`` or ``"test"`` (the dataset key suffix).
        indices: 0-based stack indices (default: all).
        baseline_focal_m_px: ``bf`` of the disparity -> depth conversion (module docstring).

    Yields:
        :class:`FocalStack` named ``ddff_<split>_<index>`` with focus distances, the equivalent thin
        lens, depth (when the split has disparity) and AIF (when the file has ``AiF_<split>``).
    """
    if not baseline_focal_m_px > 0:
        raise ValueError(f"baseline_focal_m_px must be > 0, got {baseline_focal_m_px}")
    camera = ddff_camera(baseline_focal_m_px)
    with _open(Path(path), split) as f:
        stacks = f[f"stack_{split}"]
        n, num_slices = stacks.shape[:2]
        focus = ddff_focus_distances_m(num_slices)
        disp = f.get(f"disp_{split}")
        aif = f.get(f"AiF_{split}")
        selected = range(n) if indices is None else list(indices)
        bad = [i for i in selected if not 0 <= i < n]
        if bad:
            raise ValueError(f"indices {bad} out of range for {n} stacks")
        for i in selected:
            images = _to_unit(stacks[i], f"stack_{split}[{i}]").permute(0, 3, 1, 2)
            depth = None
            if disp is not None:
                d = torch.from_numpy(np.asarray(disp[i], dtype=np.float32)).squeeze()
                if d.shape != images.shape[-2:]:
                    raise ValueError(
                        f"disp_{split}[{i}] is {tuple(d.shape)}, stack is {tuple(images.shape[-2:])}"
                    )
                depth = disparity_to_depth_m(d, baseline_focal_m_px)
            aif_img = _to_unit(aif[i], f"AiF_{split}[{i}]").permute(2, 0, 1) if aif is not None else None
            meta = {
                "source": "DDFF-12 (Hazirbas et al. 2018), Lytro ILLUM light fields refocused; "
                "https://hazirbas.com/datasets/ddff12scene/",
                "split": split,
                "index": i,
                "focus_note": "slice i focused at disparity linspace(bf/0.5, bf/7, 10)[i]",
                "baseline_focal_m_px": baseline_focal_m_px,
                "psf": "synthetic aperture (Lytro sub-apertures, assumed 9x9); equivalent thin lens with a "
                "nominal 20 um pixel pitch",
            }
            yield FocalStack(images, focus, camera, depth, aif_img, f"ddff_{split}_{i:04d}", meta)
