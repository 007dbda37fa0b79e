"""Optics: thin-lens camera model and the differentiable defocus renderer."""

from focalstack.optics.camera import (
    SIGMA_PER_COC_RADIUS,
    ThinLens,
    coc_diameter_m,
    coc_to_sigma_px,
    depth_to_sigma_px,
)
from focalstack.optics.forward import render_from_depth
from focalstack.optics.layered import layer_count, render_layered
from focalstack.optics.render import render_stack

__all__ = [
    "SIGMA_PER_COC_RADIUS",
    "ThinLens",
    "coc_diameter_m",
    "coc_to_sigma_px",
    "depth_to_sigma_px",
    "layer_count",
    "render_layered",
    "render_from_depth",
    "render_stack",
]
