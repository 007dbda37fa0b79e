"""Nominal completion of an incomplete camera, for estimating one blur-scale factor per scene.

Phones rarely report their pixel pitch (and sometimes not the f-number). Blur is proportional to
``f^2 / (N p)`` (for focus distances well beyond f), so a camera completed with nominal values differs
from the true one by a single factor on every blur std, which can be estimated from the stack itself.
:func:`complete_camera` is the one completion used for that everywhere: per-scene fitting
(``focalstack.inference.fit.resolve_camera``), held-out-slice evaluation and training with
``data.estimate_blur_scale`` (``focalstack.data.dataset.SceneFolderDataset``).

Units: metres for distances and the pixel pitch, pixels for blur.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from focalstack.optics.camera import ThinLens, coc_to_sigma_px

#: Nominal lens for an unknown focal length (metres; at most half the nearest focus distance).
NOMINAL_FOCAL_LENGTH_M = 0.005
#: Nominal f-number for an unknown aperture.
NOMINAL_F_NUMBER = 2.0
#: Default blur std (pixels) a nominal camera gives a point at the nearest focus distance in the
#: farthest-focused slice.
NOMINAL_SPAN_SIGMA_PX = 2.0

_CAMERA_KEYS = ("focal_length_m", "f_number", "pixel_size_m")


def complete_camera(
    known: Mapping[str, Any] | None,
    focus_m: Sequence[float] | torch.Tensor,
    nominal_span_sigma_px: float = NOMINAL_SPAN_SIGMA_PX,
) -> ThinLens:
    """A camera from a possibly partial ``scene.json`` camera dict, completed with nominal values.

    A complete ``known`` dict is returned as is. Otherwise the known focal length and f-number are kept,
    missing ones become :data:`NOMINAL_FOCAL_LENGTH_M` (at most half the nearest focus distance) /
    :data:`NOMINAL_F_NUMBER`, and the pixel pitch is the one that gives a point at the nearest focus
    distance a blur std of ``nominal_span_sigma_px`` pixels in the farthest-focused slice. The true blur
    is then the nominal blur times one factor (``true sigma / nominal sigma``), which the caller estimates.

    Args:
        known: the known camera entries (``focal_length_m`` and ``pixel_size_m`` in metres, ``f_number``);
            missing or None entries are completed. None means nothing is known.
        focus_m: all of the scene's focus distances in metres (at least two distinct values).
        nominal_span_sigma_px: blur std (pixels at the resolution the images are used at) of the
            completion, > 0.

    Returns:
        The complete :class:`~focalstack.optics.camera.ThinLens`.

    Raises:
        ValueError: fewer than two distinct finite focus distances, ``nominal_span_sigma_px <= 0``, or a
            known focal length that is not below every focus distance.
    """
    known = known if isinstance(known, Mapping) else {}
    if all(known.get(k) is not None for k in _CAMERA_KEYS):
        return ThinLens.from_dict(known)
    if not nominal_span_sigma_px > 0:
        raise ValueError(f"nominal_span_sigma_px must be > 0, got {nominal_span_sigma_px}")
    focus = torch.as_tensor(focus_m, dtype=torch.float64).flatten()
    if focus.numel() < 2 or not torch.isfinite(focus).all() or float(focus.min()) == float(focus.max()):
        raise ValueError(f"need at least two distinct finite focus distances, got {focus.tolist()}")
    near, far = float(focus.min()), float(focus.max())
    f = float(known.get("focal_length_m") or min(NOMINAL_FOCAL_LENGTH_M, 0.5 * near))
    n = float(known.get("f_number") or NOMINAL_F_NUMBER)
    if not f < near:
        raise ValueError(f"focal length {f:.4g} m must be below every focus distance (nearest {near:.4g} m)")
    coc = ThinLens(f, n, 1.0).coc_diameter_m(near, far)  # metres on the sensor
    return ThinLens(f, n, coc_to_sigma_px(coc, 1.0) / nominal_span_sigma_px)
