"""Differentiable spatially varying defocus renderer (placeholder: being replaced by the fast path).

render_stack(aif (B, C, H, W), sigma (B, S, H, W) px) -> (B, S, C, H, W)
"""

from __future__ import annotations

import torch


def render_stack(
    aif: torch.Tensor,
    sigma: torch.Tensor,
    *,
    kernel_size: int | None = 7,
    mode: str = "gather",
    psf: str = "gaussian",
) -> torch.Tensor:
    """Render a focal stack (temporary simple gather implementation)."""
    B, C, H, W = aif.shape
    S = sigma.shape[1]
    K = kernel_size
    r = K // 2
    s = sigma.clamp_min(1e-3)[:, :, None]  # (B,S,1,H,W)
    x = torch.nn.functional.pad(aif, (r, r, r, r))
    ones = torch.nn.functional.pad(torch.ones_like(aif[:, :1]), (r, r, r, r))
    num = 0.0
    den = 0.0
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            w = torch.exp(-(dx * dx + dy * dy) / (2 * s * s))
            xs = x[:, None, :, r + dy : r + dy + H, r + dx : r + dx + W]
            ms = ones[:, None, :, r + dy : r + dy + H, r + dx : r + dx + W]
            num = num + w * xs
            den = den + w * ms
    return num / den
