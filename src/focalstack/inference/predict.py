"""Network inference on a focal stack: normalisation, tiling for large images, relative depth.

``predict(stack) -> (depth, aif)`` is the everyday API. Images larger than ``tile`` are processed in
overlapping tiles blended with smooth weights, so memory is bounded by the tile size whatever the
image size. All tiles share the stack-level depth normalisation, so blending in the network's
normalised inverse depth ``t`` is seamless.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from focalstack.data.normalize import focus_to_u, t_to_depth, working_range_m
from focalstack.data.stack import FocalStack


@dataclass
class Prediction:
    """A prediction for one stack.

    Attributes:
        depth: (H, W) depth in metres, or a continuous slice coordinate when ``depth_units == "slices"``
            (0 = first slice's focus, S - 1 = last; only the order of the focus distances was known).
        aif: (3, H, W) all-in-focus image, sRGB in [0, 1].
        t: (H, W) the network's normalised inverse depth in [0, 1].
        depth_units: "m" or "slices".
        depth_range_m: (near, far) metres used for normalisation (None for relative depth).
    """

    depth: torch.Tensor
    aif: torch.Tensor
    t: torch.Tensor
    depth_units: str
    depth_range_m: tuple[float, float] | None


@functools.lru_cache(maxsize=4)
def _cached_model(path: str, device: str) -> nn.Module:
    from focalstack.train.checkpoint import load_model

    model, cfg = load_model(path, device=torch.device(device))
    # The focus/depth normalisation is part of what the weights learned; keep it with the model.
    model.range_margin = float(cfg.data.range_margin)
    return model.eval()


def load_predictor(
    checkpoint: str | Path | None = None, device: str | torch.device | None = None
) -> nn.Module:
    """Load a model for inference (cached); ``checkpoint=None`` uses the shipped default weights.

    ``checkpoint`` may be "default", a run folder (its last checkpoint) or a checkpoint file.
    """
    from focalstack.train.checkpoint import resolve_checkpoint

    path = resolve_checkpoint(checkpoint if checkpoint is not None else "default")
    return _cached_model(str(path.resolve()), str(torch.device(device or "cpu")))


def stack_normalisation(
    stack: FocalStack, range_margin: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """Network focus input for a stack.

    ``range_margin`` widens the focus range (in diopter spacings) to the working depth range; it must
    be the value the model was trained with (stored in its checkpoint).

    Returns:
        ``(focus_u (1, S), depth_range_m (1, 2) or None, depth_units)``. Without focus distances the
        slices are taken as evenly spaced in diopters in file order and depth is relative ("slices").
    """
    S = stack.num_slices
    if stack.focus_m is None:
        # Slice index i plays the role of a diopter value, widened by the margin as for known focus.
        u = (torch.arange(S, dtype=torch.float32) + range_margin) / (S - 1.0 + 2.0 * range_margin)
        return u[None], None, "slices"
    # Always the working range of the focus distances, as in training: a scene's own depth_range_m
    # (e.g. the ground-truth range a converter records) would shift the network's inputs away from
    # what it learned and bound its output with ground truth.
    focus = stack.focus_m.to(torch.float64)[None]
    rng = working_range_m(focus, range_margin)
    return focus_to_u(focus, rng).float(), rng.float(), "m"


def _ramp(n: int, overlap: int, lo_edge: bool, hi_edge: bool) -> torch.Tensor:
    """1-D blending weights: 1 inside, linear ramps over ``overlap`` px on sides with a neighbour."""
    w = torch.ones(n)
    if overlap > 0:
        ramp = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
        if not lo_edge:
            w[:overlap] = torch.minimum(w[:overlap], ramp)
        if not hi_edge:
            w[-overlap:] = torch.minimum(w[-overlap:], ramp.flip(0))
    return w


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    n = math.ceil((size - overlap) / (tile - overlap))
    step = (size - tile) / (n - 1)
    return [round(i * step) for i in range(n)]


@torch.no_grad()
def run_tiled(
    model: nn.Module,
    images: torch.Tensor,
    focus_u: torch.Tensor,
    *,
    focus_m: torch.Tensor | None = None,
    tile: int = 512,
    overlap: int = 64,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the model over overlapping tiles and blend.

    Args:
        model: forward(stack (1, S, 3, h, w), focus_u (1, S), focus_m=) -> {"aif", "t"}.
        images: (S, 3, H, W) sRGB stack on the model's device.
        focus_u: (1, S) normalised focus.
        focus_m: (1, S) focus distances in metres, or None when unknown.
        tile: tile size in pixels (images up to this size run in one pass).
        overlap: overlap between neighbouring tiles in pixels.

    Returns:
        ``(aif (3, H, W), t (H, W))``.
    """
    if tile <= 2 * overlap:
        raise ValueError(f"tile ({tile}) must exceed twice the overlap ({overlap})")
    _, _, H, W = images.shape
    ys, xs = _starts(H, tile, overlap), _starts(W, tile, overlap)
    acc = images.new_zeros(4, H, W)
    weight = images.new_zeros(1, H, W)
    boxes = [(y, x) for y in ys for x in xs]
    for y, x in tqdm(boxes, desc="tiles", disable=not progress or len(boxes) == 1):
        h, w = min(tile, H - y), min(tile, W - x)
        out = model(images[None, :, :, y : y + h, x : x + w], focus_u, focus_m=focus_m)
        wy = _ramp(h, min(overlap, h // 2), y == 0, y + h == H)
        wx = _ramp(w, min(overlap, w // 2), x == 0, x + w == W)
        wgt = (wy[:, None] * wx[None, :]).to(images)[None]
        acc[:, y : y + h, x : x + w] += torch.cat([out["aif"][0], out["t"][0]], dim=0) * wgt
        weight[:, y : y + h, x : x + w] += wgt
    acc /= weight
    return acc[:3].clamp(0, 1), acc[3].clamp(0, 1)


def predict_full(
    stack: FocalStack,
    *,
    checkpoint: str | Path | None = None,
    model: nn.Module | None = None,
    device: str | torch.device | None = None,
    tile: int = 512,
    overlap: int = 64,
    progress: bool = False,
) -> Prediction:
    """Predict depth and the all-in-focus image of a stack with a trained network.

    Args:
        stack: the focal stack (any size; any S >= 2; focus distances optional).
        checkpoint: weights to use (default: the shipped weights); ignored when ``model`` is given.
        model: an already loaded model.
        device: "cpu", "cuda", ... (default: cpu).
        tile, overlap: tiling for large images (pixels).
        progress: show a tqdm bar over tiles.

    Returns:
        A :class:`Prediction` (depth in metres when focus distances are known, else slice units).
    """
    dev = torch.device(device or "cpu")
    net = model if model is not None else load_predictor(checkpoint, dev)
    focus_u, rng, units = stack_normalisation(stack, getattr(net, "range_margin", 1.0))
    focus_m = None if stack.focus_m is None else torch.as_tensor(stack.focus_m, dtype=torch.float32)[None]
    focus_m = None if focus_m is None else focus_m.to(dev)
    aif, t = run_tiled(
        net,
        stack.images.to(dev),
        focus_u.to(dev),
        focus_m=focus_m,
        tile=tile,
        overlap=overlap,
        progress=progress,
    )
    aif, t = aif.cpu(), t.cpu()
    if units == "m":
        depth = t_to_depth(t[None, None].double(), rng.double())[0, 0].float()
        return Prediction(depth, aif, t, units, (float(rng[0, 0]), float(rng[0, 1])))
    # Relative depth: invert u = (i + m) / (S - 1 + 2m) to a continuous slice coordinate i.
    m = getattr(net, "range_margin", 1.0)
    slices = t * (stack.num_slices - 1.0 + 2.0 * m) - m
    return Prediction(slices, aif, t, units, None)


def predict(stack: FocalStack, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """``(depth (H, W), aif (3, H, W))`` for a stack; see :func:`predict_full` for the arguments."""
    p = predict_full(stack, **kwargs)
    return p.depth, p.aif
