"""Gather rendering (kernel chosen by the output pixel) through sigma-independent ring sums.

``out[p] = sum_k w_k(sigma(p)) R_k(p) / den(p)``, ``den(p) = sum_k w_k(sigma(p)) N_k(p)``, with ``R_k``
the ring sums of the image and ``N_k`` the number of ring-k taps inside the image. The ring sums are
computed once per image and shared by its S slices; each slice is then a per-pixel weighted sum of Kr
maps. ``N_k`` is the constant ring size except within r pixels of the border, so ``den`` is a full-window
sum (closed form for the separable Gaussian) plus corrections on a thin frame.

When sigma needs a gradient, the forward pass also forms ``J = d out / d sigma`` (B, S, C, H, W) while the
ring sums and weights are at hand; the backward pass then only recomputes the weights for the image
gradient. Nothing of size Kr x image is ever stored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from focalstack.optics._blocks import block_budget, plan_blocks, scratch
from focalstack.optics._psf import gaussian_window_sum, ring_weights
from focalstack.optics._rings import Rings, border_frame, outside_counts, ring_sums, ring_sums_adjoint


def _weighted_ring_sum(
    w: torch.Tensor, maps: torch.Tensor, out: torch.Tensor, coef: tuple[float, ...] | None = None
) -> torch.Tensor:
    """``out = sum_k coef_k w_k maps_k``: w (Kr, N, S, h, w), maps (Kr, N, C, h, w), out (N, S, C, h, w)."""
    terms = [(k, 1.0 if coef is None else coef[k]) for k in range(w.shape[0])]
    terms = [(k, c) for k, c in terms if c != 0.0]
    if not terms:
        return out.zero_()
    ws, ms = w.unsqueeze(3).unbind(0), maps.unsqueeze(2).unbind(0)
    k0, c0 = terms[0]
    torch.mul(ws[k0], ms[k0], out=out)
    if c0 != 1.0:
        out.mul_(c0)
    for k, c in terms[1:]:
        out.addcmul_(ws[k], ms[k], value=c)
    return out


class _Normaliser:
    """``sum_k w_k N_k`` (or ``sum_k r2_k w_k N_k``) for weights (Kr, N, S, h, W) of image rows [y0, y1)."""

    def __init__(self, rings: Rings, psf: str, height: int, width: int, like: torch.Tensor) -> None:
        self.rings, self.psf = rings, psf
        self.counts = torch.tensor(rings.counts, dtype=like.dtype, device=like.device)
        self.r2 = torch.tensor(rings.r2, dtype=like.dtype, device=like.device)
        self.frame = [
            (rect, outside_counts(rings, height, width, rect, like))
            for rect in border_frame(height, width, rings.radius)
        ]

    def __call__(
        self, w: torch.Tensor, y0: int, y1: int, out: torch.Tensor, r2: bool = False
    ) -> torch.Tensor:
        if self.psf == "gaussian":
            gaussian_window_sum(w, self.rings, r2, out=out)
        else:
            out.copy_(torch.tensordot(self.counts * self.r2 if r2 else self.counts, w, dims=1))
        for (ry0, ry1, x0, x1), outside in self.frame:
            lo, hi = max(ry0, y0), min(ry1, y1)
            if lo < hi:
                miss = outside[:, lo - ry0 : hi - ry0]
                if r2:
                    miss = miss * self.r2.view(-1, 1, 1)
                wk = w[:, :, :, lo - y0 : hi - y0, x0:x1]
                out[:, :, lo - y0 : hi - y0, x0:x1] -= (wk * miss[:, None, None]).sum(0)
        return out


def _blocks(shape: torch.Size, s: int, kr: int, device: torch.device) -> list[tuple]:
    b, c, height, width = shape
    # ring sums, weights and per-ring image gradients per image row
    per_row = (2 * kr * c + kr * s) * width
    return plan_blocks(b, height, per_row, block_budget(device))


class GatherRender(torch.autograd.Function):
    """Gather rendering; ``GatherRender.apply(aif, sigma, rings, psf, sigma_grad)``.

    ``sigma_grad`` (bool) says whether the forward pass must prepare the sigma-gradient.
    """

    @staticmethod
    def forward(ctx, aif: torch.Tensor, sigma: torch.Tensor, rings: Rings, psf: str, sigma_grad: bool):
        b, c, height, width = aif.shape
        s, r, kr = sigma.shape[1], rings.radius, len(rings)
        xpad = F.pad(aif, (r, r, r, r))
        normaliser = _Normaliser(rings, psf, height, width, aif)
        out = aif.new_empty((b, s, c, height, width))
        den = sigma.new_empty(sigma.shape)
        jac = aif.new_empty(out.shape) if sigma_grad else None
        for b0, b1, y0, y1 in _blocks(aif.shape, s, kr, aif.device):
            n, h = b1 - b0, y1 - y0
            maps = ring_sums(
                xpad[b0:b1, :, y0 : y1 + 2 * r], rings, out=scratch("g.maps", (kr, n, c, h, width), aif)
            )
            w, slope = ring_weights(sigma[b0:b1, :, y0:y1], rings, psf, slopes=sigma_grad)
            d = normaliser(w, y0, y1, out=den[b0:b1, :, y0:y1]).unsqueeze(2)
            o = _weighted_ring_sum(w, maps, out=out[b0:b1, :, :, y0:y1]).div_(d)
            if slope is None:
                continue
            # d out / d sigma = (sum_k dw_k R_k - out * sum_k dw_k N_k) / den
            j = jac[b0:b1, :, :, y0:y1]
            dd = scratch("g.dden", (n, s, h, width), aif)
            if slope.dense is not None:
                _weighted_ring_sum(slope.dense, maps, out=j)
                normaliser(slope.dense, y0, y1, out=dd)
                factor = torch.reciprocal(d, out=scratch("g.factor", d.shape, aif))
            else:  # dw_k = r2_k w_k scale
                _weighted_ring_sum(w, maps, out=j, coef=slope.coef)
                normaliser(w, y0, y1, out=dd, r2=True)
                factor = torch.div(slope.scale.unsqueeze(2), d, out=scratch("g.factor", d.shape, aif))
            j.addcmul_(o, dd.unsqueeze(2), value=-1.0).mul_(factor)
        ctx.rings, ctx.psf, ctx.shape = rings, psf, aif.shape
        ctx.save_for_backward(sigma, den, jac)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        sigma, den, jac = ctx.saved_tensors
        rings, psf = ctx.rings, ctx.psf
        b, c, height, width = ctx.shape
        s, r, kr = sigma.shape[1], rings.radius, len(rings)
        grad_aif = grad_sigma = None
        if ctx.needs_input_grad[1]:
            grad_sigma = torch.mul(grad[:, :, 0], jac[:, :, 0])
            for i in range(1, c):
                grad_sigma.addcmul_(grad[:, :, i], jac[:, :, i])
        if ctx.needs_input_grad[0]:
            # d out[p] / d R_k[p] = w_k(sigma(p)) / den(p); sum over slices, then apply R_k^T.
            grad_xpad = grad.new_zeros((b, c, height + 2 * r, width + 2 * r))
            for b0, b1, y0, y1 in _blocks(ctx.shape, s, kr, grad.device):
                n, h = b1 - b0, y1 - y0
                w, _ = ring_weights(sigma[b0:b1, :, y0:y1], rings, psf)
                gn = torch.div(
                    grad[b0:b1, :, :, y0:y1],
                    den[b0:b1, :, y0:y1].unsqueeze(2),
                    out=scratch("g.gn", (n, s, c, h, width), grad),
                )
                per_ring = scratch("g.per_ring", (kr, n, c, h, width), grad)
                torch.mul(w[:, :, 0].unsqueeze(2), gn[:, 0].unsqueeze(0), out=per_ring)
                for i in range(1, s):
                    per_ring.addcmul_(w[:, :, i].unsqueeze(2), gn[:, i].unsqueeze(0))
                ring_sums_adjoint(per_ring, rings, out=grad_xpad[b0:b1, :, y0 : y1 + 2 * r])
            grad_aif = grad_xpad[..., r : r + height, r : r + width]
        return grad_aif, grad_sigma, None, None, None
