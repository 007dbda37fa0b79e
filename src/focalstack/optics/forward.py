"""The forward model in one call: (AIF, depth) + lens + focus distances -> rendered focal stack."""

from __future__ import annotations

import torch

from focalstack.optics.camera import depth_to_sigma_px
from focalstack.optics.render import render_stack


def render_from_depth(
    aif: torch.Tensor,
    depth_m: torch.Tensor,
    focus_m: torch.Tensor,
    focal_length_m: torch.Tensor | float,
    f_number: torch.Tensor | float,
    pixel_size_m: torch.Tensor | float,
    *,
    blur_scale: torch.Tensor | float = 1.0,
    **render_kwargs,
) -> torch.Tensor:
    """Render the focal stack a thin lens would record of a scene.

    Args:
        aif: (B, C, H, W) all-in-focus image.
        depth_m: (B, 1, H, W) depth in metres.
        focus_m: (B, S) focus distances in metres.
        focal_length_m, f_number, pixel_size_m: floats or (B,) tensors.
        blur_scale: factor on every sigma (for cameras whose pixel pitch / f-number is only known up to
            a scale); float or (B,) tensor.
        **render_kwargs: forwarded to :func:`render_stack` (kernel_size, mode, psf).

    Returns:
        (B, S, C, H, W) rendered slices.
    """
    sigma = depth_to_sigma_px(depth_m, focus_m, focal_length_m, f_number, pixel_size_m)
    if isinstance(blur_scale, torch.Tensor):
        blur_scale = blur_scale.reshape(-1, 1, 1, 1)
    return render_stack(aif, sigma * blur_scale, **render_kwargs)
