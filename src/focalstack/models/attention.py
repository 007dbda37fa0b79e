"""DAIF-Net with a slice-attention head: depth and AIF as soft selections over the focal stack.

The paper's DAIF-Net regresses the AIF colours and the depth from max-fused features. Here the same
encoder/decoder instead scores every slice at every pixel; a softmax over the slices gives weights
``w_i`` with which

- the AIF is ``sum_i w_i J_i`` (plus a small learned correction), i.e. focus stacking learned end to
  end: colours come from the photos themselves, so they are right from the first step;
- the normalised inverse depth is ``sum_i w_i u_i`` (plus a learned residual in logit space so depth
  can leave the span of the focus distances), i.e. depth is anchored at the slices' focus distances.

"Sharpness is the link between depth and AIF" (method.md) becomes literal: one set of weights serves
both. The scores start from a classical cue: ``beta * log`` of each slice's focus measure (smoothed
squared Laplacian, relative to the stack mean) plus a learned, zero-initialised correction, so the
untrained network already is soft depth-from-focus with soft focus stacking and training (self-
supervised) refines it. Everything else (shared encoder, layer-wise global pooling, max fusion, order
invariance, any S, any size) is DAIF-Net's.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from focalstack.models.daifnet import DAIFNet, _check_inputs
from focalstack.utils.focus import focus_floor, focus_measure

#: Largest change the learned correction may make to the soft-selected AIF (sRGB units).
AIF_CORRECTION = 0.25
#: Initial sharpness of the focus-measure softmax: weights ~ focus_measure ** FOCUS_BETA. Learnable.
#: With the contrast-invariant cue, 30 saturated the softmax so the learned scores got almost no
#: gradient (held-out procedural delta1 / AbsRel after the shipped recipe: beta 30, 1800 steps 0.778 /
#: 0.35; beta 10, 1200 steps 0.781 / 0.19; beta 3, 1200 steps 0.727 / 0.18).
FOCUS_BETA = 10.0
#: Focus-measure window (pixels); the floor under its log is the stack's own noise level
#: (:func:`~focalstack.utils.focus.focus_floor`), so the cue does not depend on image contrast.
FOCUS_WINDOW = 9
_EPS = 1e-4


class DAIFNetAttention(DAIFNet):
    """DAIF-Net whose head softly selects slices (see module docstring).

    Args:
        width, depth: as DAIF-Net.
        focus_input: what the encoder's focus plane holds for each slice: ``"u"``, the normalised focus
            (camera-independent, the default); ``"metres"``, the raw focus distance as the paper feeds
            it (``daifnet-attn-metres``, the focus-normalisation ablation: the same depth then looks
            different to the network for every camera and focus range); or ``"none"``, a constant, so
            slices are scored by their appearance only and the focus distances enter solely through
            the selection ``t = sum_i w_i u_i``: the network cannot learn a prior over absolute slice
            positions (``daifnet-attn-nofocus``).
    """

    def __init__(
        self, width: int = 16, depth: int = 4, focus_input: Literal["u", "metres", "none"] = "u"
    ) -> None:
        super().__init__(width, depth)
        if focus_input not in ("u", "metres", "none"):
            raise ValueError(f"focus_input must be 'u', 'metres' or 'none', got {focus_input!r}")
        self.focus_input = focus_input
        ch = width
        self.score = nn.Sequential(
            nn.Conv2d(2 * ch, ch, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(ch, 1, 3, padding=1),
        )
        # The corrections start near zero (tiny, not zero, so every layer receives a gradient): the
        # untrained model is soft depth from focus with soft focus stacking.
        for layer in (self.score[-1], self.head):
            nn.init.normal_(layer.weight, std=1e-3)
            nn.init.zeros_(layer.bias)
        self.log_beta = nn.Parameter(torch.tensor(float(FOCUS_BETA)).log())

    def forward(
        self, stack: torch.Tensor, focus_u: torch.Tensor, focus_m: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Args: stack (B, S, 3, H, W) sRGB in [0, 1]; focus_u (B, S); focus_m (B, S) metres (read only
        with ``focus_input="metres"``). Returns {"aif", "t"} as DAIF-Net."""
        _check_inputs(stack, focus_u)
        B, S, _, H, W = stack.shape
        stem, y = self.encode_decode(stack, self._focus_plane(focus_u, focus_m))
        shared = y.repeat_interleave(S, dim=0)  # (B * S, C, H', W') decoder context for every slice
        learned = self.score(torch.cat([stem, shared], dim=1)).unflatten(0, (B, S))[:, :, 0, :H, :W]
        with torch.no_grad():
            fm = focus_measure(stack.flatten(0, 1), window=FOCUS_WINDOW).unflatten(0, (B, S))
            cue = (fm + focus_floor(fm)).log()
            cue = cue - cue.mean(dim=1, keepdim=True)
        scores = self.log_beta.exp() * cue + learned
        weights = torch.softmax(scores, dim=1)  # (B, S, H, W)
        head = self.head(y)[..., :H, :W]
        aif = (weights[:, :, None] * stack).sum(dim=1) + AIF_CORRECTION * torch.tanh(head[:, :3])
        t_sel = (weights * focus_u.to(weights.dtype)[:, :, None, None]).sum(dim=1, keepdim=True)
        t = torch.sigmoid(torch.logit(t_sel.clamp(_EPS, 1 - _EPS)) + head[:, 3:])
        return {"aif": aif.clamp(0, 1), "t": t}

    def _focus_plane(self, focus_u: torch.Tensor, focus_m: torch.Tensor | None) -> torch.Tensor:
        """(B, S) value of each slice's focus plane at the encoder input."""
        if self.focus_input == "none":
            return torch.full_like(focus_u, 0.5)
        if self.focus_input == "u":
            return focus_u
        if focus_m is None or focus_m.shape != focus_u.shape:
            got = None if focus_m is None else tuple(focus_m.shape)
            raise ValueError(f"focus_input='metres' needs focus_m of shape {tuple(focus_u.shape)}, got {got}")
        return focus_m.to(focus_u.dtype)
