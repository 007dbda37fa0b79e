"""DAIF-Net: joint depth and all-in-focus estimation from a focal stack (Si et al., CVPR 2023).

One U-Net encoder is shared by all slices. Each slice enters as RGB plus a constant plane holding its
normalised focus ``u`` (docs/CONVENTIONS.md). After every encoder level each slice's features are
concatenated with their max over the stack ("layer-wise global pooling"); the skip connections and the
bottleneck are max-fused across the stack, so a single decoder predicts 3 AIF channels and the
normalised inverse depth ``t``. Max fusion makes the output independent of slice order and count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from focalstack.models.blocks import ConvBlock, FusedConvBlock, stack_max


def _check_inputs(stack: torch.Tensor, focus_u: torch.Tensor) -> None:
    if stack.dim() != 5 or stack.shape[2] != 3:
        raise ValueError(f"stack must be (B, S, 3, H, W), got {tuple(stack.shape)}")
    if stack.shape[1] < 2:
        raise ValueError(f"a focal stack needs S >= 2 slices, got S = {stack.shape[1]}")
    if focus_u.shape != stack.shape[:2]:
        raise ValueError(
            f"focus_u must be (B, S) = {tuple(stack.shape[:2])} like the stack, got {tuple(focus_u.shape)}"
        )
    if not stack.is_floating_point() or not focus_u.is_floating_point():
        raise ValueError(f"stack and focus_u must be floating point, got {stack.dtype} and {focus_u.dtype}")


class DAIFNet(nn.Module):
    """DAIF-Net.

    Args:
        width: channels of the first encoder level; level ``l`` has ``width * 2**l``.
        depth: number of 2x downsamplings (the bottleneck is at ``H / 2**depth``). Inputs of any size are
            padded internally (edge replication) to a multiple of ``2**depth`` and cropped back.

    ``width=16, depth=4`` (the paper's setting) has about 2.35 M parameters.
    """

    def __init__(self, width: int = 16, depth: int = 4) -> None:
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be >= 1, got width={width}, depth={depth}")
        self.width, self.depth = width, depth
        ch = [width * 2**level for level in range(depth + 1)]
        self.stem = ConvBlock(4, ch[0])
        # down[i] produces level i + 1; the last one is the bottleneck.
        self.down = nn.ModuleList(FusedConvBlock(ch[i], ch[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(ConvBlock(ch[i + 1] + ch[i], ch[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(ch[0], 4, 1)

    def forward(
        self, stack: torch.Tensor, focus_u: torch.Tensor, focus_m: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Predict the all-in-focus image and normalised inverse depth.

        Args:
            stack: (B, S, 3, H, W) sRGB slices in [0, 1], S >= 2, any order.
            focus_u: (B, S) normalised focus of each slice (``focalstack.data.normalize.focus_to_u``).
            focus_m: (B, S) focus distances in metres; unused here (every model takes it, so callers
                need not know which one reads it).

        Returns:
            ``{"aif": (B, 3, H, W) in [0, 1], "t": (B, 1, H, W) in [0, 1]}``; ``t`` maps to metres with
            ``focalstack.data.normalize.t_to_depth``.
        """
        _check_inputs(stack, focus_u)
        H, W = stack.shape[-2:]
        _, y = self.encode_decode(stack, focus_u)
        out = torch.sigmoid(self.head(y)[..., :H, :W])
        return {"aif": out[:, :3], "t": out[:, 3:]}

    def encode_decode(self, stack: torch.Tensor, focus_u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The shared trunk: per-slice stem features and the fused decoder output (inputs unchecked).

        Args:
            stack: (B, S, 3, H, W); focus_u: (B, S).

        Returns:
            ``(stem (B * S, width, H', W'), y (B, width, H', W'))`` at the padded size H' x W'
            (multiples of ``2**depth``); crop with ``[..., :H, :W]``.
        """
        B, S, _, H, W = stack.shape
        mult = 2**self.depth
        pad_h, pad_w = -H % mult, -W % mult
        x = stack.flatten(0, 1)
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        u_plane = focus_u.to(x.dtype).reshape(B * S, 1, 1, 1).expand(-1, 1, *x.shape[-2:])
        stem = self.stem(torch.cat([x, u_plane], dim=1))

        feats, skips = stem, []
        for block in self.down:
            pooled = stack_max(feats, B)
            skips.append(pooled)
            feats = block(F.max_pool2d(feats, 2), F.max_pool2d(pooled, 2))
        y = stack_max(feats, B)

        for block, skip in zip(self.up, reversed(skips)):
            y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        return stem, y
