"""focalstack: depth and all-in-focus images from focal stacks, trained without ground truth."""

from focalstack.optics import ThinLens, coc_diameter_m, depth_to_sigma_px, render_stack

__version__ = "0.1.0"

__all__ = ["ThinLens", "coc_diameter_m", "depth_to_sigma_px", "render_stack", "__version__"]
