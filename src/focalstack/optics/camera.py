"""Thin-lens camera model: circle of confusion (CoC) and blur-size conversions.

This module is the single place in focalstack where the circle of confusion is computed. Everything
else (renderer inputs, synthesis, losses, fitting) goes through :func:`coc_diameter_m` /
:func:`coc_to_sigma_px` or the :class:`ThinLens` methods that wrap them.

Units: distances and the pixel pitch are metres; blur radii and Gaussian standard deviations are
pixels (of the image the pixel pitch refers to); inverse distances are diopters (1/m).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

T = TypeVar("T", float, torch.Tensor)

#: Gaussian std (pixels) per CoC radius (pixels). The paper's layer uses sigma = c / 2, which is also
#: the per-axis std of a uniform disc of radius c, so Gaussian and disc PSFs share one blur scale.
SIGMA_PER_COC_RADIUS = 0.5


def _as_tensor(x: Any, like: torch.Tensor | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if like is None:  # all-float call: compute in double so the returned float is exact to ~1e-16
        return torch.as_tensor(x, dtype=torch.float64)
    dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
    return torch.as_tensor(x, dtype=dtype, device=like.device)


def _check_finite_positive(name: str, x: torch.Tensor) -> None:
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite, got non-finite values")
    if (x <= 0).any():
        raise ValueError(f"{name} must be > 0 (metres), got min {float(x.min()):.4g}")


def coc_diameter_m(
    depth_m: T,
    focus_m: T,
    focal_length_m: T,
    f_number: T,
) -> T:
    """Thin-lens circle-of-confusion diameter on the sensor.

    ``CoC = A * f * |d - F| / (d * (F - f))`` with aperture diameter ``A = f / N``.

    All arguments broadcast against each other (floats or tensors). The result is a float if every
    argument is a float, else a tensor on the device/dtype of the first tensor argument.

    Args:
        depth_m: scene depth d in metres, > 0.
        focus_m: focus distance F in metres, must exceed the focal length.
        focal_length_m: focal length f in metres, > 0.
        f_number: f-number N (dimensionless), > 0.

    Returns:
        CoC diameter in metres (on the sensor), same broadcast shape as the inputs.

    Raises:
        ValueError: non-finite or non-positive inputs, or a focus distance <= focal length.
    """
    all_float = not any(isinstance(v, torch.Tensor) for v in (depth_m, focus_m, focal_length_m, f_number))
    like = next(
        (v for v in (depth_m, focus_m, focal_length_m, f_number) if isinstance(v, torch.Tensor)), None
    )
    d, F, f, N = (_as_tensor(v, like) for v in (depth_m, focus_m, focal_length_m, f_number))
    with torch.no_grad():
        _check_finite_positive("depth_m", d)
        _check_finite_positive("focus_m", F)
        _check_finite_positive("focal_length_m", f)
        _check_finite_positive("f_number", N)
        if (f >= F).any():
            raise ValueError(
                f"focus distance must exceed the focal length: min focus {float(F.min()):.4g} m "
                f"<= focal length {float(f.max()):.4g} m"
            )
    aperture = f / N
    coc = aperture * f * (d - F).abs() / (d * (F - f))
    return float(coc) if all_float else coc


def coc_to_sigma_px(coc_m: T, pixel_size_m: T) -> T:
    """Convert a CoC diameter (metres on the sensor) to the Gaussian PSF std in pixels.

    ``sigma = (CoC / (2 p)) * SIGMA_PER_COC_RADIUS`` (radius in pixels, halved as in the paper).
    """
    return coc_m / (2.0 * pixel_size_m) * SIGMA_PER_COC_RADIUS


def depth_to_sigma_px(
    depth_m: torch.Tensor,
    focus_m: torch.Tensor,
    focal_length_m: torch.Tensor | float,
    f_number: torch.Tensor | float,
    pixel_size_m: torch.Tensor | float,
) -> torch.Tensor:
    """Per-slice Gaussian PSF std (pixels) for a depth map and a stack of focus distances.

    Args:
        depth_m: (B, 1, H, W) or (B, H, W) depth in metres.
        focus_m: (B, S) focus distances in metres.
        focal_length_m, f_number, pixel_size_m: floats or (B,) tensors (per-sample cameras).

    Returns:
        (B, S, H, W) Gaussian std in pixels.
    """
    if depth_m.dim() == 4:
        if depth_m.shape[1] != 1:
            raise ValueError(f"depth_m must be (B, 1, H, W) or (B, H, W), got {tuple(depth_m.shape)}")
        depth_m = depth_m[:, 0]
    if depth_m.dim() != 3 or focus_m.dim() != 2 or focus_m.shape[0] != depth_m.shape[0]:
        raise ValueError(
            f"expected depth (B, H, W) and focus (B, S) with equal B, got {tuple(depth_m.shape)} and "
            f"{tuple(focus_m.shape)}"
        )

    def per_sample(x: torch.Tensor | float) -> torch.Tensor | float:
        return x.reshape(-1, 1, 1, 1) if isinstance(x, torch.Tensor) else x

    coc = coc_diameter_m(
        depth_m[:, None], focus_m[:, :, None, None], per_sample(focal_length_m), per_sample(f_number)
    )
    return coc_to_sigma_px(coc, per_sample(pixel_size_m))


@dataclass(frozen=True)
class ThinLens:
    """A thin-lens camera.

    Attributes:
        focal_length_m: focal length f in metres.
        f_number: f-number N; the aperture diameter is f / N.
        pixel_size_m: pixel pitch p in metres at the resolution the images are used at.
    """

    focal_length_m: float
    f_number: float
    pixel_size_m: float

    def __post_init__(self) -> None:
        for name in ("focal_length_m", "f_number", "pixel_size_m"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"ThinLens.{name} must be a finite number > 0, got {v!r}")

    @property
    def aperture_m(self) -> float:
        """Aperture diameter A = f / N in metres."""
        return self.focal_length_m / self.f_number

    def coc_diameter_m(self, depth_m: T, focus_m: T) -> T:
        """CoC diameter (metres on the sensor) of a point at ``depth_m`` when focused at ``focus_m``."""
        return coc_diameter_m(depth_m, focus_m, self.focal_length_m, self.f_number)

    def coc_radius_px(self, depth_m: T, focus_m: T) -> T:
        """CoC radius in pixels, ``c = CoC / (2 p)``."""
        return self.coc_diameter_m(depth_m, focus_m) / (2.0 * self.pixel_size_m)

    def sigma_px(self, depth_m: T, focus_m: T) -> T:
        """Gaussian PSF std in pixels (``c / 2``, the paper's convention)."""
        return coc_to_sigma_px(self.coc_diameter_m(depth_m, focus_m), self.pixel_size_m)

    def depth_of_field_m(self, focus_m: float, max_coc_radius_px: float = 1.0) -> tuple[float, float]:
        """Depth range around ``focus_m`` whose CoC radius stays within ``max_coc_radius_px`` pixels.

        Solves ``A f |d - F| / (d (F - f)) = 2 p c_max`` for d on both sides of the focus distance.

        Returns:
            (near_m, far_m); ``far_m`` is ``math.inf`` beyond the hyperfocal distance.
        """
        if not math.isfinite(focus_m) or focus_m <= self.focal_length_m:
            raise ValueError(
                f"focus distance {focus_m} m must be finite and exceed the focal length "
                f"{self.focal_length_m} m"
            )
        if max_coc_radius_px < 0:
            raise ValueError(f"max_coc_radius_px must be >= 0, got {max_coc_radius_px}")
        k = (
            2.0
            * self.pixel_size_m
            * max_coc_radius_px
            * (focus_m - self.focal_length_m)
            / (self.aperture_m * self.focal_length_m)
        )
        # |d - F| / d = k  ->  near: d = F / (1 + k); far: d = F / (1 - k) when k < 1.
        near = focus_m / (1.0 + k)
        far = focus_m / (1.0 - k) if k < 1.0 else math.inf
        return near, far

    def scaled(self, factor: float) -> ThinLens:
        """The same camera with images resized by ``factor`` (pixel pitch divided by ``factor``)."""
        if not factor > 0:
            raise ValueError(f"resize factor must be > 0, got {factor}")
        return ThinLens(self.focal_length_m, self.f_number, self.pixel_size_m / factor)

    def to_dict(self) -> dict[str, float]:
        """The ``camera`` dict of ``scene.json``."""
        return {
            "focal_length_m": self.focal_length_m,
            "f_number": self.f_number,
            "pixel_size_m": self.pixel_size_m,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ThinLens:
        """Build from a ``scene.json`` camera dict; raises ``ValueError`` naming missing keys."""
        missing = [k for k in ("focal_length_m", "f_number", "pixel_size_m") if d.get(k) is None]
        if missing:
            raise ValueError(f"camera dict is missing {missing} (have {sorted(d)})")
        return cls(float(d["focal_length_m"]), float(d["f_number"]), float(d["pixel_size_m"]))
