"""focalstack: depth and all-in-focus images from focal stacks, trained without ground truth.

The everyday API lives at the top level: ``FocalStack`` (load / build a stack), ``predict`` (shipped
or given weights -> depth in metres and AIF), ``fit`` (per-scene optimisation through the renderer),
``render_stack`` and the thin-lens camera. Heavier parts load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from focalstack.optics import ThinLens, coc_diameter_m, depth_to_sigma_px, render_stack

__version__ = "0.1.0"

#: Top-level names imported on first access (keeps ``import focalstack`` light).
_LAZY = {
    "FocalStack": "focalstack.data.stack",
    "predict": "focalstack.inference.predict",
    "fit_scene": "focalstack.inference.fit",
    "FitConfig": "focalstack.inference.fit",
    "create_model": "focalstack.models",
}

__all__ = ["ThinLens", "coc_diameter_m", "depth_to_sigma_px", "render_stack", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'focalstack' has no attribute {name!r}")
