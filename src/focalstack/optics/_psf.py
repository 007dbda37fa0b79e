"""Radial PSF weights per ring and their derivatives with respect to sigma.

Both PSFs are unnormalised functions of the tap radius only, evaluated for every ring of a window:
- Gaussian: ``w = exp(-r2 / (2 sigma^2))``;
- disc of radius ``R = 2 sigma`` (the CoC radius) with a one-pixel linear anti-aliased edge:
  ``w = clamp(R + 0.5 - sqrt(r2), 0, 1)``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from focalstack.optics._blocks import scratch
from focalstack.optics._rings import Rings

#: Gaussian exponents ``-1 / (2 sigma^2)`` are kept >= -80 by flooring sigma: the weights there are
#: < 2e-35 of the centre weight, and sigma -> 0 would otherwise give 0/0 and exp()'s slow path.
_MIN_EXPONENT = -80.0
#: Gaussian sigma (px) below which the clamped exponent leaves the kernel a delta.
GAUSSIAN_SIGMA_FLOOR = math.sqrt(0.5 / -_MIN_EXPONENT)


@functools.lru_cache(maxsize=64)
def _power_plan(r2: tuple[int, ...]) -> tuple[tuple[int, int, int], ...]:
    """Order in which to form ``q**e`` for every ring exponent by single products of earlier powers.

    Returns ``(e, i, j)`` steps meaning ``q**e = q**i * q**j``; helper exponents that are no ring's are
    inserted where no split into available powers exists. One exp() plus one multiply per ring is much
    cheaper than an exp() per ring.
    """
    avail = {1}
    steps: list[tuple[int, int, int]] = []

    def ensure(e: int) -> None:
        if e in avail:
            return
        split = next((v for v in sorted(avail, reverse=True) if v < e and e - v in avail), None)
        if split is None:
            split = max(v for v in avail if v < e)
            ensure(e - split)
        steps.append((e, split, e - split))
        avail.add(e)

    for e in r2:
        if e > 1:
            ensure(e)
    return tuple(steps)


@dataclass(frozen=True)
class Slopes:
    """``d w_k / d sigma``: either ``dense`` (Kr, ...) or factored as ``coef[k] * w_k * scale``.

    The factored form (Gaussian) lets callers fold the per-ring constant into operations they do anyway
    instead of materialising another (Kr, ...) tensor.
    """

    dense: torch.Tensor | None = None
    coef: tuple[float, ...] | None = None
    scale: torch.Tensor | None = None


def _gaussian(sigma: torch.Tensor, rings: Rings, slopes: bool) -> tuple[torch.Tensor, Slopes | None]:
    shape = tuple(sigma.shape)
    s = torch.clamp_min(sigma, GAUSSIAN_SIGMA_FLOOR, out=scratch("psf.s", shape, sigma))
    q = torch.mul(s, s, out=scratch("psf.q", shape, sigma)).reciprocal_().mul_(-0.5).exp_()
    w = scratch("psf.w", (len(rings), *shape), sigma)
    slot = {e: k for k, e in enumerate(rings.r2)}
    powers = {1: q}
    for e, i, j in _power_plan(rings.r2):
        dst = w[slot[e]] if e in slot else scratch(f"psf.q{e}", shape, sigma)
        powers[e] = torch.mul(powers[i], powers[j], out=dst)
    for k, e in enumerate(rings.r2):
        if e == 0:
            w[k].fill_(1.0)
        elif e == 1:
            w[k].copy_(q)
    if not slopes:
        return w, None
    # d/dsigma exp(-r2 / (2 sigma^2)) = r2 * w / sigma^3
    inv = torch.reciprocal(s, out=scratch("psf.inv", shape, sigma))
    scale = torch.mul(inv, inv, out=scratch("psf.scale", shape, sigma)).mul_(inv)
    return w, Slopes(coef=tuple(float(e) for e in rings.r2), scale=scale)


def gaussian_window_sum(w: torch.Tensor, rings: Rings, slope: bool, out: torch.Tensor) -> torch.Tensor:
    """``sum_k n_k w_k`` (or ``sum_k n_k r2_k w_k`` if ``slope``) over a full window, for Gaussian weights.

    The K x K Gaussian is separable, ``sum = theta^2`` with ``theta = sum_{|d| <= r} q^(d^2)``, and
    ``sum_k n_k r2_k w_k = 2 theta phi`` with ``phi = sum_{|d| <= r} d^2 q^(d^2)``, which reads only the
    r + 1 rings on the axes instead of all Kr.

    Args:
        w: (Kr, ...) Gaussian ring weights from :func:`ring_weights`.
        out: (...) result buffer.
    """
    slot = {e: k for k, e in enumerate(rings.r2)}
    theta = out.fill_(1.0) if not slope else scratch("psf.theta", tuple(out.shape), w).fill_(1.0)
    for d in range(1, rings.radius + 1):
        theta.add_(w[slot[d * d]], alpha=2.0)
    if not slope:
        return theta.square_()
    out.zero_()
    for d in range(1, rings.radius + 1):
        out.add_(w[slot[d * d]], alpha=2.0 * d * d)
    return out.mul_(theta).mul_(2.0)


def _disc(sigma: torch.Tensor, rings: Rings, slopes: bool) -> tuple[torch.Tensor, Slopes | None]:
    radius = torch.tensor([math.sqrt(e) for e in rings.r2], dtype=sigma.dtype, device=sigma.device)
    # u = R + 0.5 - r: the fraction of the pixel at radius r that the anti-aliased disc covers.
    u = (2.0 * sigma + 0.5).unsqueeze(0) - radius.view(-1, *([1] * sigma.dim()))
    w = torch.clamp(u, 0.0, 1.0, out=scratch("psf.w", tuple(u.shape), sigma))
    if not slopes:
        return w, None
    return w, Slopes(dense=((u > 0) & (u < 1)).to(sigma.dtype).mul_(2.0))


def ring_weights(
    sigma: torch.Tensor, rings: Rings, psf: str, *, slopes: bool = False
) -> tuple[torch.Tensor, Slopes | None]:
    """Unnormalised PSF weight of every ring at every pixel, and optionally its sigma-derivative.

    Args:
        sigma: (...) Gaussian std in pixels, >= 0 (checked by the caller).
        rings: window rings (:func:`focalstack.optics._rings.window_rings`).
        psf: ``"gaussian"`` or ``"disc"``.
        slopes: also return ``d w / d sigma``.

    Returns:
        ``(w, slopes)``: w is (Kr, ...); slopes is None unless requested.
    """
    return (_gaussian if psf == "gaussian" else _disc)(sigma, rings, slopes)
