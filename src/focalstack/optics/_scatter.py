"""Scatter rendering (kernel chosen by the source pixel), the semantics of the original CUDA layer.

Every source pixel p spreads ``a_k(p) = w_k(sigma(p)) / Z(p)`` to the taps of ring k around it, with
``Z = sum_k n_k w_k`` the weight of its full K x K window; taps outside the image are dropped and every
output is divided by the weight it received:
``out[q] = sum_k (R_k^T (a_k I))(q) / sum_k (R_k^T a_k)(q)``. Sources whose CoC radius ``2 sigma`` is
<= 1 px keep a delta kernel (no sigma-gradient there). The kernel changes with the source, so nothing is
shared across slices; each slice costs one adjoint ring sum of C+1 maps.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from focalstack.optics._blocks import block_budget, plan_blocks, scratch
from focalstack.optics._psf import Slopes, gaussian_window_sum, ring_weights
from focalstack.optics._rings import Rings, ring_sums, ring_sums_adjoint

#: Sources with sigma <= this (CoC radius <= 1 px) are copied unblurred, as in the original layer.
DELTA_SIGMA_PX = 0.5


def _source_weights(
    sigma: torch.Tensor, rings: Rings, psf: str, slopes: bool
) -> tuple[torch.Tensor, torch.Tensor, Slopes | None]:
    """Unnormalised source weights ``w`` (Kr, ...), delta below the threshold, their window sums ``Z``
    (...) and slopes."""
    w, slope = ring_weights(sigma, rings, psf, slopes=slopes)
    blurred = (sigma > DELTA_SIGMA_PX).to(sigma.dtype)
    w[1:].mul_(blurred)
    w[0].fill_(1.0)  # Gaussian: exp(0); disc: fully covered once 2 sigma + 0.5 >= 1, or a delta
    if slope is not None and slope.dense is not None:
        slope.dense.mul_(blurred)  # (the factored Gaussian slopes follow w)
    z = scratch("s.z", tuple(sigma.shape), sigma)
    if psf == "gaussian":
        gaussian_window_sum(w, rings, False, out=z)
    else:
        counts = torch.tensor(rings.counts, dtype=sigma.dtype, device=sigma.device)
        z.copy_(torch.tensordot(counts, w, dims=1))
    return w, z, slope


def _blocks(n: int, c: int, height: int, width: int, rings: Rings, device: torch.device) -> list[tuple]:
    kr = len(rings)
    # vertical partial sums, ring sums of the gradient, weights and slopes
    per_row = ((rings.radius + 1) * (c + 1) + kr * (c + 1) + 3 * kr) * width
    return plan_blocks(n, height, per_row, block_budget(device))


def _images(src: torch.Tensor, i0: int, i1: int, s: int, y0: int, y1: int) -> torch.Tensor:
    """(i1 - i0, C+1, y1 - y0, W): the source image of every flattened (image, slice) item."""
    if i0 // s == (i1 - 1) // s:
        return src[i0 // s, :, y0:y1].expand(i1 - i0, -1, -1, -1)
    item = torch.arange(i0, i1, device=src.device) // s
    return src[item, :, y0:y1]


class ScatterRender(torch.autograd.Function):
    """Scatter rendering; ``ScatterRender.apply(aif, sigma, rings, psf, sigma_grad)`` (flag unused)."""

    @staticmethod
    def forward(ctx, aif: torch.Tensor, sigma: torch.Tensor, rings: Rings, psf: str, sigma_grad: bool):
        b, c, height, width = aif.shape
        s, r = sigma.shape[1], rings.radius
        src = torch.cat([aif, torch.ones_like(aif[:, :1])], dim=1)  # ones: the received weight
        flat_sigma = sigma.reshape(b * s, height, width)
        out = aif.new_empty((b * s, c, height, width))
        den = sigma.new_empty((b * s, height, width))
        acc = None  # the padded (numerator, received weight) of the current items
        for i0, i1, y0, y1 in _blocks(b * s, c, height, width, rings, aif.device):
            if y0 == 0:
                shape = (i1 - i0, c + 1, height + 2 * r, width + 2 * r)
                acc = scratch("s.acc", shape, aif).zero_()
            w, z, _ = _source_weights(flat_sigma[i0:i1, y0:y1], rings, psf, slopes=False)
            a = w.div_(z).unsqueeze(2)  # the normalised source kernel a_k = w_k / Z
            images = _images(src, i0, i1, s, y0, y1)
            ring_sums_adjoint(images, rings, out=acc[:, :, y0 : y1 + 2 * r], scale=a)
            if y1 == height:
                num = acc[:, :, r : r + height, r : r + width]
                torch.div(num[:, :c], num[:, c:], out=out[i0:i1])
                den[i0:i1] = num[:, c]
        ctx.rings, ctx.psf = rings, psf
        ctx.save_for_backward(aif, sigma, out, den)
        return out.view(b, s, c, height, width)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        aif, sigma, out, den = ctx.saved_tensors
        rings, psf = ctx.rings, ctx.psf
        need_x, need_s = ctx.needs_input_grad[:2]
        b, c, height, width = aif.shape
        s, r, kr = sigma.shape[1], rings.radius, len(rings)
        src = torch.cat([aif, torch.ones_like(aif[:, :1])], dim=1)
        flat_sigma = sigma.reshape(b * s, height, width)
        grad = grad.reshape(b * s, c, height, width)
        grad_aif = aif.new_zeros(aif.shape) if need_x else None
        grad_sigma = sigma.new_empty((b * s, height, width)) if need_s else None
        gpad = None
        for i0, i1, y0, y1 in _blocks(b * s, c, height, width, rings, aif.device):
            n, h = i1 - i0, y1 - y0
            if y0 == 0:
                # d loss / d (numerator, denominator) of every output, zero-padded for the ring sums
                gpad = scratch("s.gpad", (n, c + 1, height + 2 * r, width + 2 * r), aif).zero_()
                inner = gpad[:, :, r : r + height, r : r + width]
                torch.div(grad[i0:i1], den[i0:i1].unsqueeze(1), out=inner[:, :c])
                torch.mul(inner[:, 0], out[i0:i1, 0], out=inner[:, c])
                for i in range(1, c):
                    inner[:, c].addcmul_(inner[:, i], out[i0:i1, i])
                inner[:, c].neg_()
            # u_k(p) = sum over ring k around p of the output gradients = d loss / d (a_k(p) src(p))
            u = ring_sums(
                gpad[:, :, y0 : y1 + 2 * r], rings, out=scratch("s.u", (kr, n, c + 1, h, width), aif)
            )
            w, z, slope = _source_weights(flat_sigma[i0:i1, y0:y1], rings, psf, slopes=need_s)
            inv_z = torch.reciprocal(z, out=scratch("s.inv_z", tuple(z.shape), aif))
            if need_x:
                gx = scratch("s.gx", (n, c, h, width), aif)
                torch.mul(u[0, :, :c], w[0].unsqueeze(1), out=gx)
                for k in range(1, kr):
                    gx.addcmul_(u[k, :, :c], w[k].unsqueeze(1))
                gx.mul_(inv_z.unsqueeze(1))
                for img in range(i0 // s, (i1 - 1) // s + 1):  # sum the slices of each image
                    lo, hi = max(i0, img * s), min(i1, (img + 1) * s)
                    grad_aif[img, :, y0:y1] += gx[lo - i0 : hi - i0].sum(0)
            if need_s:
                # da_k = d loss / d a_k = sum over channels (and the ones channel) of u_k * src
                images = _images(src, i0, i1, s, y0, y1)
                da = scratch("s.da", (kr, n, h, width), aif).copy_(u[:, :, c])
                for i in range(c):
                    da.addcmul_(u[:, :, i], images[:, i])
                gs = grad_sigma[i0:i1, y0:y1]
                # a_k = w_k / Z:  d loss / d sigma = (sum_k da_k dw_k - (sum_k da_k w_k) Z' / Z) / Z
                dz = scratch("s.dz", (n, h, width), aif)
                if slope.dense is None:  # dw_k = r2_k w_k scale
                    da.mul_(w)
                    r2 = torch.tensor(slope.coef, dtype=aif.dtype, device=aif.device)
                    gs.copy_(torch.tensordot(r2, da, dims=1))
                    gaussian_window_sum(w, rings, True, out=dz)
                    gs.sub_(da.sum(0).mul_(dz).mul_(inv_z)).mul_(slope.scale)
                else:
                    counts = torch.tensor(rings.counts, dtype=aif.dtype, device=aif.device)
                    dz.copy_(torch.tensordot(counts, slope.dense, dims=1))
                    gs.copy_((da * slope.dense).sum(0))
                    gs.sub_(da.mul_(w).sum(0).mul_(dz).mul_(inv_z))
                gs.mul_(inv_z)
        if need_s:
            grad_sigma = grad_sigma.view(sigma.shape)
        return grad_aif, grad_sigma, None, None, None
