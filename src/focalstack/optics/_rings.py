"""Ring decomposition of a square K x K window, and its shift-add ring sums.

A radially symmetric PSF weight depends on a tap offset ``(dy, dx)`` only through ``r2 = dx^2 + dy^2``.
Grouping the K*K taps into "rings" of equal ``r2`` (K=7: 10 rings, K=11: 20) turns a per-pixel-kernel
filter into a per-pixel weighted sum of a few sigma-independent ring-sum maps.

Every ring is a union of symmetric tap sets ``{(+-a, +-b), (+-b, +-a)}`` with ``0 <= a <= b <= r``, each
of which is separable into a symmetric horizontal pair sum and a symmetric vertical pair sum. The ring
sums below use that: first the ``r`` horizontal pair sums, then a few views added per ring, which needs
about half the elementwise passes of adding the K*K shifted copies one by one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from focalstack.optics._blocks import scratch


@dataclass(frozen=True)
class Rings:
    """The rings of a K x K window, sorted by squared radius.

    Attributes:
        radius: half width r = K // 2 (pixels).
        r2: squared radius of each ring (pixels^2), ascending, starting with 0.
        counts: number of taps in each ring.
        pairs: for each ring, the ``(a, b)`` with ``a <= b`` and ``a^2 + b^2 = r2`` that make it up.
    """

    radius: int
    r2: tuple[int, ...]
    counts: tuple[int, ...]
    pairs: tuple[tuple[tuple[int, int], ...], ...]

    def __len__(self) -> int:
        return len(self.r2)


def _taps(a: int, b: int) -> int:
    """Number of offsets in the symmetric set {(+-a, +-b), (+-b, +-a)}."""
    n = (1 if a == 0 else 2) * (1 if b == 0 else 2)
    return n if a == b else 2 * n


@functools.lru_cache(maxsize=64)
def window_rings(kernel_size: int) -> Rings:
    """Rings of the square ``kernel_size`` x ``kernel_size`` window (odd size, checked by the caller)."""
    r = kernel_size // 2
    groups: dict[int, list[tuple[int, int]]] = {}
    for b in range(r + 1):
        for a in range(b + 1):
            groups.setdefault(a * a + b * b, []).append((a, b))
    r2 = tuple(sorted(groups))
    pairs = tuple(tuple(groups[v]) for v in r2)
    counts = tuple(sum(_taps(a, b) for a, b in p) for p in pairs)
    return Rings(radius=r, r2=r2, counts=counts, pairs=pairs)


def _vpair(x: torch.Tensor, b: int, r: int, h: int) -> list[torch.Tensor]:
    """Rows shifted by -b and +b (one view when b = 0) of a map padded by r rows; each has h rows."""
    if b == 0:
        return [x[..., r : r + h, :]]
    return [x[..., r - b : r - b + h, :], x[..., r + b : r + b + h, :]]


def ring_sums(xpad: torch.Tensor, rings: Rings, out: torch.Tensor | None = None) -> torch.Tensor:
    """Zero-padded ring sums ``R_k(p) = sum_{o in ring k} x(p + o)``.

    Args:
        xpad: (N, C, h + 2r, w + 2r) input padded by r = ``rings.radius`` on every side (the padding
            holds whatever lies outside the block: zeros at the image border, neighbours inside it).
        out: optional (Kr, N, C, h, w) result buffer.

    Returns:
        (Kr, N, C, h, w) ring sums, Kr = ``len(rings)``.
    """
    r = rings.radius
    h, w = xpad.shape[-2] - 2 * r, xpad.shape[-1] - 2 * r
    hsum = [xpad[..., r : r + w]]
    if r > 0:
        buf = scratch("rings.hsum", (r, *xpad.shape[:-1], w), xpad)
        for a in range(1, r + 1):
            hsum.append(torch.add(xpad[..., r - a : r - a + w], xpad[..., r + a : r + a + w], out=buf[a - 1]))
    if out is None:
        out = xpad.new_empty((len(rings), *xpad.shape[:-2], h, w))
    for k, pairs in enumerate(rings.pairs):
        views: list[torch.Tensor] = []
        for a, b in pairs:
            views += _vpair(hsum[a], b, r, h)
            if a != b:
                views += _vpair(hsum[b], a, r, h)
        if len(views) == 1:
            out[k].copy_(views[0])
        else:
            torch.add(views[0], views[1], out=out[k])
            for v in views[2:]:
                out[k].add_(v)
    return out


def ring_sums_adjoint(
    g: torch.Tensor, rings: Rings, out: torch.Tensor, scale: torch.Tensor | None = None
) -> torch.Tensor:
    """Adjoint of :func:`ring_sums`, accumulated: ``out(q) += sum_k sum_{o in ring k} s_k g_k(q - o)``.

    Rings are symmetric (o in a ring iff -o is), so this is also the "scatter" form: every pixel p sends
    ``s_k(p) g_k(p)`` to all taps of ring k around it.

    Args:
        g: (Kr, N, C, h, w) per-ring maps, or (N, C, h, w) shared by all rings when ``scale`` is given.
        out: (N, C, h + 2r, w + 2r) buffer on the padded grid to add into (crop r on each side for
            zero padding).
        scale: optional (Kr, N, 1, h, w) per-ring factors multiplied into ``g`` on the fly.

    Returns:
        ``out``.
    """
    r = rings.radius
    n, c, h, w = g.shape[-4:]
    # vert[a] collects everything whose horizontal offset is +-a; the horizontal spread comes last.
    vert = scratch("rings.vert", (r + 1, n, c, h + 2 * r, w), g).zero_()
    for k, pairs in enumerate(rings.pairs):
        gk = g[k] if scale is None else g
        for a, b in pairs:
            targets = [(a, b)] if a == b else [(a, b), (b, a)]
            for horiz, vshift in targets:
                for view in _vpair(vert[horiz], vshift, r, h):
                    if scale is None:
                        view.add_(gk)
                    else:
                        view.addcmul_(gk, scale[k])
    out[..., r : r + w].add_(vert[0])
    for a in range(1, r + 1):
        out[..., r - a : r - a + w].add_(vert[a])
        out[..., r + a : r + a + w].add_(vert[a])
    return out


def border_frame(height: int, width: int, r: int) -> list[tuple[int, int, int, int]]:
    """Disjoint rectangles ``(y0, y1, x0, x1)`` covering every pixel closer than r to the image border."""
    top, bottom = min(r, height), max(height - r, min(r, height))
    left, right = min(r, width), max(width - r, min(r, width))
    rects = [
        (0, top, 0, width),
        (bottom, height, 0, width),
        (top, bottom, 0, left),
        (top, bottom, right, width),
    ]
    return [rc for rc in rects if rc[1] > rc[0] and rc[3] > rc[2]]


def outside_counts(
    rings: Rings, height: int, width: int, rect: tuple[int, int, int, int], like: torch.Tensor
) -> torch.Tensor:
    """(Kr, y1 - y0, x1 - x0): taps of each ring that fall outside the image, for pixels of ``rect``."""
    r = rings.radius
    y0, y1, x0, x1 = rect
    inside = F.pad(like.new_ones((1, 1, height, width)), (r, r, r, r))
    counts = torch.tensor(rings.counts, dtype=like.dtype, device=like.device).view(-1, 1, 1)
    return counts - ring_sums(inside[..., y0 : y1 + 2 * r, x0 : x1 + 2 * r], rings)[:, 0, 0]
