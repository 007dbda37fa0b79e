"""Re-rendering a stack through the lens as the losses do, and the depth sweep built on it.

:func:`rerender` is the one place the losses (and the sweep) turn an AIF and blur into a stack.

Depth sweep: per pixel, the depth hypothesis whose re-rendering best explains the whole stack.

Fitting depth by gradient descent through the renderer is non-convex: blur changes with depth in
opposite directions on the two sides of every focal plane, so a fit stays in the basin it starts in.
Started from depth from focus it stays near the slice positions; started from the true depth it stays
near the truth (the diagnostic rows of ``python -m benchmarks.accuracy``). The sweep
searches instead: it renders an all-in-focus estimate at ``candidates`` depths spread evenly in
inverse depth over the working range, through exactly the losses' renderer
(:func:`focalstack.losses.rerender`: PSF, window, linear light), aggregates the squared error of
every slice over a Gaussian window, keeps the best candidate per pixel and refines it between its
neighbours with a parabola. It is depth from defocus by exhaustive search, using every slice's blur
rather than only the sharpest slice, so its depth lies between the focus distances where the scene
does. It needs the camera (the blur of each hypothesis) and an AIF estimate (focus stacking suffices:
where no slice is sharp the sweep leans towards the nearest focus distance, which a fit then corrects).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import kornia
import torch

from focalstack.data.normalize import t_to_depth
from focalstack.losses.aggregation import semi_global_aggregation
from focalstack.optics import depth_to_sigma_px, layer_count, render_layered, render_stack
from focalstack.utils.color import linear_to_srgb, srgb_to_linear

if TYPE_CHECKING:
    from focalstack.losses.selfsup import LossConfig


def blur_px(
    inputs: dict[str, torch.Tensor], depth_m: torch.Tensor, blur_scale: torch.Tensor | float | None = None
) -> torch.Tensor:
    """Per-slice blur std (pixels) of a depth map under the batch's camera, times ``blur_scale``.

    Args:
        inputs: ``batch["inputs"]``-style dict with ``focus_m`` (B, S), ``focal_length_m``, ``f_number``,
            ``pixel_size_m`` (B,).
        depth_m: (B, 1, H, W) depth in metres (H = W = 1 broadcasts one depth per item).
        blur_scale: optional factor on every blur std, a scalar or (B,).

    Returns:
        (B, S, H, W) blur std in pixels.

    Raises:
        ValueError: ``blur_scale`` is neither a scalar nor (B,).
    """
    sigma = depth_to_sigma_px(
        depth_m, inputs["focus_m"], inputs["focal_length_m"], inputs["f_number"], inputs["pixel_size_m"]
    )
    if blur_scale is None:
        return sigma
    scale = torch.as_tensor(blur_scale, dtype=sigma.dtype, device=sigma.device)
    if scale.dim() > 1 or scale.numel() not in (1, sigma.shape[0]):
        shape, B = tuple(scale.shape), sigma.shape[0]
        raise ValueError(f"blur_scale must be a scalar or a (B,) = ({B},) tensor, got {shape}")
    return sigma * (scale.reshape(-1, 1, 1, 1) if scale.dim() else scale)


def rerender(aif: torch.Tensor, sigma_px: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """The stack the losses compare with the input: ``aif`` blurred by ``sigma_px`` as ``cfg`` says.

    A blur map carries no depth order, so ``render_mode="layered"`` renders here as ``"gather"`` (the
    same for one depth per image, as in the sweep); the losses call :func:`rerender_layered` instead.

    Args:
        aif: (B, 3, H, W) sRGB in [0, 1].
        sigma_px: (B, S, H, W) blur std per slice in pixels.
        cfg: renderer options (``render_mode``, ``psf``, ``kernel_size``, ``linear_light``).

    Returns:
        (B, S, 3, H, W) sRGB.
    """
    return _render_source(_source(aif, cfg), sigma_px, cfg)


def rerender_layered(
    aif: torch.Tensor,
    inputs: dict[str, torch.Tensor],
    depth_m: torch.Tensor,
    cfg: LossConfig,
    blur_scale: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """The stack re-rendered with occlusion (:func:`focalstack.optics.render_layered`) over the working range.

    The layers are spread evenly in inverse depth over ``inputs["depth_range_m"]``, ``cfg.layer_step_px``
    of PSF radius apart in the slice where the radius varies most (at most ``cfg.max_layers``).

    Args:
        aif: (B, 3, H, W) sRGB in [0, 1].
        inputs: ``batch["inputs"]``-style dict with the camera, ``focus_m`` (B, S) and ``depth_range_m``
            (B, 2) metres (near, far).
        depth_m: (B, 1, H, W) depth in metres.
        cfg: renderer options (``psf``, ``linear_light``, ``layer_step_px``, ``max_layers``,
            ``layered_fill_hidden``).
        blur_scale: optional factor on every blur std, a scalar or (B,).

    Returns:
        (B, S, 3, H, W) sRGB.
    """
    diopter_range = 1.0 / inputs["depth_range_m"].flip(-1).to(aif.dtype)  # (far, near) in 1/m
    radius = 2.0 * _blur_over_range(inputs, diopter_range, 257, blur_scale).detach()  # a fine grid
    L = layer_count(float(radius.diff(dim=-1).abs().sum(dim=-1).max()), cfg.layer_step_px, cfg.max_layers)
    sigma = _blur_over_range(inputs, diopter_range, L, blur_scale)
    source = _source(aif, cfg)
    render = render_layered(
        source, 1.0 / depth_m, diopter_range, sigma, cfg.psf, fill_hidden=cfg.layered_fill_hidden
    )
    return linear_to_srgb(render) if cfg.linear_light else render.clamp(0.0, 1.0)


def _blur_over_range(
    inputs: dict[str, torch.Tensor],
    diopter_range: torch.Tensor,
    n: int,
    blur_scale: torch.Tensor | float | None,
) -> torch.Tensor:
    """(B, S, n) blur std (pixels) at ``n`` inverse depths spread evenly over ``diopter_range`` (B, 2)."""
    steps = torch.linspace(0.0, 1.0, n, dtype=diopter_range.dtype, device=diopter_range.device)
    diopter = diopter_range[:, :1] + (diopter_range[:, 1:] - diopter_range[:, :1]) * steps  # (B, n)
    return blur_px(inputs, 1.0 / diopter[:, None, None, :], blur_scale)[:, :, 0, :]


def _source(aif: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """What the renderer blurs: the AIF itself, or its linear-light values."""
    return srgb_to_linear(aif) if cfg.linear_light else aif


def _render_source(source: torch.Tensor, sigma_px: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    # a per-pixel blur map has no depth order to layer by; for one depth per image both modes agree
    mode = "gather" if cfg.render_mode == "layered" else cfg.render_mode
    render = render_stack(source, sigma_px, kernel_size=cfg.kernel_size, mode=mode, psf=cfg.psf)
    return linear_to_srgb(render) if cfg.linear_light else render


def sweep_costs(
    inputs: dict[str, torch.Tensor],
    aif: torch.Tensor,
    *,
    loss: LossConfig | None = None,
    candidates: int = 32,
    blur_scale: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Per-pixel error of ``candidates`` fronto-parallel depth hypotheses re-rendered from ``aif``.

    Args:
        inputs: as :func:`depth_sweep`.
        aif: (B, 3, H, W) all-in-focus estimate, sRGB in [0, 1].
        loss: renderer options; default ``LossConfig()``.
        candidates: number of hypotheses (>= 3), evenly spaced in normalised inverse depth ``t`` over
            ``depth_range_m``, ``t = 0`` (far) first.
        blur_scale: optional factor on every blur std, a scalar or (B,).

    Returns:
        (B, candidates, H, W) squared sRGB error, averaged over channels and summed over slices.

    Raises:
        ValueError: ``candidates`` < 3 or mismatched shapes.
    """
    stack = inputs["stack"]
    if candidates < 3:
        raise ValueError(f"need candidates >= 3, got {candidates}")
    if stack.dim() != 5 or aif.dim() != 4 or tuple(aif.shape) != (stack.shape[0], *stack.shape[2:]):
        shapes = f"{tuple(stack.shape)}, {tuple(aif.shape)}"
        raise ValueError(f"stack must be (B, S, 3, H, W) and aif (B, 3, H, W) alike; got {shapes}")
    if loss is None:
        from focalstack.losses.selfsup import LossConfig

        loss = LossConfig()
    B, S, _, H, W = stack.shape
    costs = []
    with torch.no_grad():
        source = _source(aif, loss)  # shared by every candidate
        if loss.sweep_relative_beyond_focus:  # nearer than every focus distance it is the least blurred
            focused_nearest = inputs["focus_m"].argmin(dim=1)
            nearest = _source(stack[torch.arange(B, device=stack.device), focused_nearest], loss)
        for tj in torch.linspace(0.0, 1.0, candidates, dtype=stack.dtype, device=stack.device):
            depth = t_to_depth(tj.expand(B, 1, 1, 1), inputs["depth_range_m"])
            sigma, src, scale = blur_px(inputs, depth, blur_scale), source, 1.0
            if loss.sweep_relative_beyond_focus:
                sigma, src, scale = _beyond_focus(sigma, depth, inputs["focus_m"], source, nearest)
            render = _render_source(src, sigma.expand(B, S, H, W).contiguous(), loss)
            residual = _window(render - stack, loss.sweep_residual_blur_px)
            costs.append(residual.square().mean(dim=2).sum(dim=1) * scale)
    return torch.stack(costs, dim=1)


def _beyond_focus(
    sigma_px: torch.Tensor,
    depth_m: torch.Tensor,
    focus_m: torch.Tensor,
    source: torch.Tensor,
    nearest: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Blurs (B, S, 1, 1), source (B, 3, H, W) and cost factor (B, 1, 1) of one sweep hypothesis (one depth
    per item): nearer than every focus distance, ``nearest`` (the slice focused nearest, the least
    blurred there) rendered with :func:`blur_beyond_focus`; else ``source`` and the blurs as they are.

    There no slice is sharp, and what a focus stacker makes of the slices is some mix of them (sharper
    than the least-blurred one in places, where a blurrier slice's pyramid coefficient happens to be
    larger): only the least-blurred slice has a known blur to render the others from. It re-renders
    itself exactly, so the other S - 1 slices' errors stand in for all S.
    """
    nearer = _nearer_than_focus(depth_m, focus_m)
    S = sigma_px.shape[1]
    scale = torch.where(nearer[:, 0], S / (S - 1), 1.0)
    return blur_beyond_focus(sigma_px, depth_m, focus_m), torch.where(nearer, nearest, source), scale


def _nearer_than_focus(depth_m: torch.Tensor, focus_m: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) bool: ``depth_m`` (B, 1, H, W) nearer than every focus distance (``focus_m`` (B, S))."""
    return depth_m < focus_m.amin(dim=1).view(-1, 1, 1, 1)


def blur_beyond_focus(sigma_px: torch.Tensor, depth_m: torch.Tensor, focus_m: torch.Tensor) -> torch.Tensor:
    """Blur relative to the least-blurred slice for depths nearer than every focus distance; else as is.

    There no slice is sharp: the least-blurred slice carries blur ``min_s sigma_s``. Std-like blurs add
    in quadrature, so blurring that slice by ``sqrt(sigma_s^2 - min_s sigma_s^2)`` gives slice ``s`` its
    own blur (exactly for the Gaussian PSF, in second moments for the disc). Continuous at the nearest
    focus distance, where the least blur is 0. (Beyond the farthest focus distance the least blur is
    bounded by that distance's diopters, usually under a slice spacing, so depths there are left as
    they are.)

    Args:
        sigma_px: (B, S, H, W) blur std of each slice, pixels (H = W = 1 for one depth per item).
        depth_m: (B, 1, H, W) depth, metres, that ``sigma_px`` belongs to.
        focus_m: (B, S) focus distances, metres.

    Returns:
        (B, S, H, W) blur std, pixels. Not for autograd: its square root has no gradient at 0.
    """
    nearer = _nearer_than_focus(depth_m, focus_m)
    least = torch.where(nearer, sigma_px.amin(dim=1, keepdim=True), torch.zeros_like(depth_m))
    return (sigma_px.square() - least.square()).clamp_min(0.0).sqrt()


#: The PSFs :func:`select_psf` chooses between, in the order that wins a tie.
PSF_CHOICES = ("disc", "gaussian")


def select_psf(
    inputs: dict[str, torch.Tensor],
    aif: torch.Tensor,
    *,
    loss: LossConfig | None = None,
    candidates: int = 32,
    border: int = 8,
) -> tuple[str, dict[str, float]]:
    """The PSF model that re-renders a stack better: each pixel's best depth hypothesis, per PSF.

    :func:`least_error_psf` of :func:`sweep_costs_per_psf`.

    Args:
        inputs: as :func:`depth_sweep`.
        aif: (B, 3, H, W) all-in-focus estimate, sRGB in [0, 1] (e.g. focus stacking).
        loss: the other renderer options (its ``psf`` is ignored); default ``LossConfig()``.
        candidates: number of depth hypotheses (>= 3).
        border: as :func:`least_error_psf`.

    Returns:
        The chosen PSF name and each PSF's median least error (squared sRGB, summed over slices).

    Raises:
        ValueError: as :func:`sweep_costs`, or a negative ``border``.
    """
    return least_error_psf(sweep_costs_per_psf(inputs, aif, loss=loss, candidates=candidates), border)


def sweep_costs_per_psf(
    inputs: dict[str, torch.Tensor],
    aif: torch.Tensor,
    *,
    loss: LossConfig | None = None,
    candidates: int = 32,
) -> dict[str, torch.Tensor]:
    """PSF name -> :func:`sweep_costs` (B, candidates, H, W) with that PSF, for each of :data:`PSF_CHOICES`.

    ``loss`` gives the other renderer options (its ``psf`` is ignored); default ``LossConfig()``.
    """
    if loss is None:
        from focalstack.losses.selfsup import LossConfig

        loss = LossConfig()
    return {
        psf: sweep_costs(inputs, aif, loss=dataclasses.replace(loss, psf=psf), candidates=candidates)
        for psf in PSF_CHOICES
    }


def least_error_psf(costs: Mapping[str, torch.Tensor], border: int = 8) -> tuple[str, dict[str, float]]:
    """The PSF whose sweep errors have the lower median over the pixels of each pixel's least error.

    Each pixel's least error over the hypotheses is taken without a window (a window mixes depths,
    which favours the smoother Gaussian); the median over the pixels (over the whole batch: one choice
    for it) is robust to occlusion edges and holes. Both models have the same unknowns (one depth per
    pixel), so the comparison is fair. Stacks made with a disc and with a Gaussian PSF are told apart
    (``python -m benchmarks.psf_choice``: 69 of 72 synthetic stacks).

    Args:
        costs: PSF name -> its (B, N, H, W) :func:`sweep_costs`; ties go to the first name.
        border: pixels left out at every image edge (the renderer pads there); 0 when the image is
            smaller than ``4 * border``.

    Returns:
        The chosen PSF name and each PSF's median least error.

    Raises:
        ValueError: a negative ``border``.
    """
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    errors = {}
    for psf, cost in costs.items():
        H, W = cost.shape[-2:]
        b = border if min(H, W) > 4 * border else 0
        errors[psf] = cost.amin(dim=1)[..., b : H - b, b : W - b].median().item()
    return min(errors, key=errors.__getitem__), errors


def depth_sweep(
    inputs: dict[str, torch.Tensor],
    aif: torch.Tensor,
    *,
    loss: LossConfig | None = None,
    candidates: int = 32,
    window_sigma_px: float = 4.0,
    window_levels: int = 1,
    normalise: bool = False,
    penalties: tuple[float, float] | None = None,
    noise_costs: torch.Tensor | None = None,
    blur_scale: torch.Tensor | float | None = None,
    costs: torch.Tensor | None = None,
    noise_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Depth (metres) per pixel by testing ``candidates`` depth hypotheses through the renderer.

    Memory: a (B, candidates, H, W) cost volume plus one rendered stack at a time.

    Args:
        inputs: ``batch["inputs"]``-style dict: ``stack`` (B, S, 3, H, W) sRGB, ``focus_m`` (B, S) metres,
            ``focal_length_m``, ``f_number``, ``pixel_size_m`` (B,), ``depth_range_m`` (B, 2) metres.
        aif: (B, 3, H, W) all-in-focus estimate, sRGB in [0, 1] (e.g. focus stacking).
        loss: renderer options (``psf``, ``kernel_size``, ``render_mode``, ``linear_light``); default
            ``LossConfig()``.
        candidates: number of depth hypotheses (>= 3), evenly spaced in normalised inverse depth over
            ``depth_range_m`` (both ends included).
        window_sigma_px: std in pixels of the Gaussian window the squared errors are summed over
            (0: per pixel). Larger windows are steadier in weak texture, smaller ones keep depth edges.
        window_levels: number of windows whose aggregated errors are added, with stds
            ``window_sigma_px * 4**k`` for ``k < window_levels``. Where a pixel's neighbourhood has
            texture the small window's error varies most with depth and decides; in flat regions only
            the wide windows vary, so depth is carried in from the nearest textured edges (multi-scale
            cost aggregation, as in stereo matching).
        normalise: divide each pixel's errors by their mean over the hypotheses plus the image's noise
            floor (the median over pixels of the smallest error) before aggregating, so weakly textured
            pixels count as much as strongly textured ones and, in wide windows, a strong-texture
            object does not pull its weak-texture surroundings to its own depth; pixels without texture
            (errors at the noise floor) keep little weight.
        penalties: ``(p1, p2)``: aggregate the windowed errors semi-globally
            (:func:`~focalstack.losses.aggregation.semi_global_aggregation`, guided by the grey AIF)
            with penalty ``p1`` for a one-candidate step and ``p2`` for a jump. Each pixel's errors are
            first divided by their contrast (mean minus least over the hypotheses) plus the contrast
            that noise alone gives (from ``noise_costs``; without it, the image's median contrast), so
            the penalties are in units of a pixel's own evidence: a weakly textured region keeps its
            own depth next to a strongly textured object, while pixels whose contrast is at the noise
            level take the depth of their neighbours. ``None``: no semi-global step.
        noise_costs: (B, candidates, h, w) :func:`sweep_costs` of a textureless scene with the same
            noise and AIF estimator (any size). Its mean per hypothesis, the error that noise alone
            adds (an AIF estimate keeps noise, which a sharp hypothesis re-renders and a blurred one
            smooths away, so flat regions lean towards the most blurred depths), is subtracted.
        blur_scale: optional factor on every blur std, a scalar or (B,).
        costs: the (B, candidates, H, W) :func:`sweep_costs` of ``aif`` with these options, when they
            are at hand already (e.g. from choosing the PSF); ``None``: computed here.
        noise_bias: (B, candidates, H, W) the error noise alone adds to each hypothesis at each pixel,
            subtracted instead of the mean of ``noise_costs`` (which then only sets the contrast floor):
            with signal-dependent noise, :func:`noise_bias_map` of references at several intensities.

    Returns:
        (B, 1, H, W) depth in metres inside ``depth_range_m``.

    Raises:
        ValueError: ``candidates`` < 3, negative ``window_sigma_px``, ``window_levels`` < 1,
            mismatched shapes, or penalties not ``0 <= p1 <= p2``.
    """
    if window_sigma_px < 0 or window_levels < 1:
        got = f"{window_sigma_px}, {window_levels}"
        raise ValueError(f"need window_sigma_px >= 0 and window_levels >= 1, got {got}")
    if penalties is not None and not 0 <= penalties[0] <= penalties[1]:
        raise ValueError(f"penalties must be (p1, p2) with 0 <= p1 <= p2, got {penalties}")
    if costs is None:
        costs = sweep_costs(inputs, aif, loss=loss, candidates=candidates, blur_scale=blur_scale)
    elif costs.dim() != 4 or tuple(costs.shape) != (aif.shape[0], candidates, *aif.shape[-2:]):
        raise ValueError(f"costs must be (B, candidates, H, W) like the aif, got {tuple(costs.shape)}")
    cost = costs
    B = cost.shape[0]
    if noise_costs is not None and (
        noise_costs.dim() != 4 or tuple(noise_costs.shape[:2]) != (B, candidates)
    ):
        raise ValueError(f"noise_costs must be (B, candidates, h, w), got {tuple(noise_costs.shape)}")
    if noise_bias is not None:
        if tuple(noise_bias.shape) != tuple(cost.shape):
            raise ValueError(
                f"noise_bias must be {tuple(cost.shape)} like the costs, got {tuple(noise_bias.shape)}"
            )
        cost = cost - noise_bias
    elif noise_costs is not None:
        cost = cost - noise_costs.mean(dim=(2, 3), keepdim=True)
    if normalise:
        floor = cost.amin(dim=1).flatten(1).median(dim=1).values.reshape(B, 1, 1, 1)
        cost = cost / (cost.mean(dim=1, keepdim=True) + floor.clamp_min(1e-12))
    cost = sum(_window(cost, window_sigma_px * 4**k) for k in range(window_levels))
    if penalties is not None:
        cost = _per_pixel_contrast(cost, window_sigma_px, noise_costs)
        cost = semi_global_aggregation(cost, aif.mean(dim=1), *penalties)
    best = _refine(cost)
    return t_to_depth(best / (candidates - 1), inputs["depth_range_m"])


def noise_bias_map(
    reference_errors: torch.Tensor,
    reference_intensity: torch.Tensor,
    intensity: torch.Tensor,
    window_sigma_px: float = 0.0,
) -> torch.Tensor:
    """Per-pixel error that noise alone adds to each sweep hypothesis, for signal-dependent noise.

    The errors are measured on textureless references at a few intensities, each with the noise of that
    intensity (:func:`focalstack.utils.noise.noise_profile`), and interpolated linearly in intensity at
    each pixel (held constant beyond the first and last reference).

    Args:
        reference_errors: (B, L, N) mean :func:`sweep_costs` of each of L references, per hypothesis.
        reference_intensity: (B, L) the references' intensities, increasing.
        intensity: (B, 1, H, W) each pixel's intensity (same units, e.g. the grey AIF).
        window_sigma_px: std (pixels) of a Gaussian window ``intensity`` is first averaged over, e.g. the
            sweep's error window (0: per pixel).

    Returns:
        (B, N, H, W) expected noise error, for ``depth_sweep(noise_bias=)``.

    Raises:
        ValueError: mismatched shapes, intensities that do not increase or a negative window.
    """
    ranks_ok = reference_errors.dim() == 3 and intensity.dim() == 4
    B, L, N = reference_errors.shape if ranks_ok else (0, 0, 0)
    if not ranks_ok or tuple(reference_intensity.shape) != (B, L) or tuple(intensity.shape[:2]) != (B, 1):
        got = [tuple(t.shape) for t in (reference_errors, reference_intensity, intensity)]
        raise ValueError(
            f"need reference_errors (B, L, N), reference_intensity (B, L), intensity (B, 1, H, W); got {got}"
        )
    if L > 1 and not (reference_intensity.diff(dim=1) > 0).all():
        raise ValueError("reference_intensity must increase along L")
    if window_sigma_px < 0:
        raise ValueError(f"window_sigma_px must be >= 0, got {window_sigma_px}")
    intensity = _window(intensity, window_sigma_px)
    if L == 1:
        return reference_errors[..., None, None].expand(B, N, *intensity.shape[-2:])
    x = intensity.flatten(1)  # (B, P)
    lo, hi = reference_intensity[:, :1], reference_intensity[:, -1:]
    x = torch.maximum(torch.minimum(x, hi), lo)
    j = torch.searchsorted(reference_intensity.contiguous(), x.contiguous()).clamp(1, L - 1)
    x0, x1 = reference_intensity.gather(1, j - 1), reference_intensity.gather(1, j)
    a = ((x - x0) / (x1 - x0)).unsqueeze(1)  # (B, 1, P)
    below = torch.gather(reference_errors, 1, (j - 1)[:, :, None].expand(-1, -1, N)).transpose(1, 2)
    above = torch.gather(reference_errors, 1, j[:, :, None].expand(-1, -1, N)).transpose(1, 2)
    return (below * (1 - a) + above * a).view(B, N, *intensity.shape[-2:])


def _contrast(cost: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) spread of each pixel's errors: their mean minus their least."""
    return cost.mean(dim=1, keepdim=True) - cost.amin(dim=1, keepdim=True)


def _per_pixel_contrast(
    cost: torch.Tensor, window_sigma_px: float, noise_costs: torch.Tensor | None
) -> torch.Tensor:
    """Windowed errors with each pixel's least at 0, divided by its contrast plus the noise contrast."""
    contrast = _contrast(cost)
    if noise_costs is None:
        floor = contrast
    else:
        noise = noise_costs - noise_costs.mean(dim=(2, 3), keepdim=True)
        floor = _contrast(_window(noise, window_sigma_px))
    floor = floor.flatten(1).median(dim=1).values.clamp_min(1e-12).reshape(-1, 1, 1, 1)
    return (cost - cost.amin(dim=1, keepdim=True)) / (contrast + floor)


def _window(cost: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """``cost`` (..., H, W) summed over a Gaussian window of std ``sigma_px`` (0: unchanged)."""
    if sigma_px <= 0:
        return cost
    k = 2 * math.ceil(3 * sigma_px) + 1
    x = cost.reshape(-1, 1, *cost.shape[-2:])
    x = kornia.filters.gaussian_blur2d(x, (k, k), (sigma_px, sigma_px), border_type="replicate")
    return x.reshape(cost.shape)


def _refine(cost: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) sub-candidate index of the minimum of (B, N, H, W) costs (parabola through 3 points)."""
    n = cost.shape[1]
    j = cost.argmin(dim=1, keepdim=True)
    jc = j.clamp(1, n - 2)
    below, at, above = (cost.gather(1, jc + o) for o in (-1, 0, 1))
    curvature = (below - 2 * at + above).clamp_min(1e-12)
    offset = (0.5 * (below - above) / curvature).clamp(-0.5, 0.5)
    # at either end of the range the minimum is the end itself
    return j.to(cost.dtype) + torch.where(j == jc, offset, torch.zeros_like(offset))
