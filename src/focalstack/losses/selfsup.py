"""Self-supervised losses of DAIF-Net: the focal stack is its own supervision.

The predicted AIF image and depth are re-rendered through the thin-lens defocus model into every input
slice (reconstruction), the AIF is tied to a "coarse AIF" assembled from the sharpest input slices,
and two priors regularise the result (Laplacian-of-Gaussian sharpness of the AIF, edge-aware
smoothness of the inverse depth). Ground truth cannot enter: :func:`self_supervised_losses` accepts
exactly the ``batch["inputs"]`` keys of docs/CONVENTIONS.md and the predictions.

Images are sRGB values in [0, 1], depth is metres, blur is a Gaussian std in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import kornia
import torch

from focalstack.data.normalize import depth_to_t, focus_to_u
from focalstack.losses.rendering import blur_px, depth_sweep, rerender, rerender_layered
from focalstack.utils.focus import focus_floor, focus_measure, focus_peak

#: SSIM dynamic range that tolerates sensor noise (``LossConfig.ssim_range``); used by ``fit`` and the
#: shipped recipe (``python -m benchmarks.fit_procedural`` compares it with standard SSIM, range 1).
NOISE_TOLERANT_SSIM_RANGE = 10.0
#: Keys of ``batch["inputs"]`` (docs/CONVENTIONS.md); nothing else may reach a loss.
INPUT_KEYS = frozenset({"stack", "focus_m", "focal_length_m", "f_number", "pixel_size_m", "depth_range_m"})
#: Keys of the predictions passed to the losses.
OUTPUT_KEYS = frozenset({"aif", "depth_m"})


@dataclass
class LossConfig:
    """Loss weights and renderer options (defaults: the paper's code; its README uses sharpness 10).

    Attributes:
        recon_weight: weight of the slice reconstruction term ``mix (1 - SSIM) + (1 - mix) L1``.
        aif_weight: weight of the AIF vs coarse-AIF term (same photometric mix).
        sharpness_weight: weight of the LoG sharpness prior on the AIF (a reward: the term is <= 0).
        smooth_weight: weight of the edge-aware smoothness of the normalised inverse depth ``t``.
        smooth_beta: edge sensitivity: the smoothness weight is ``exp(-beta |grad AIF|)``.
        ssim_mix: share of ``1 - SSIM`` in the photometric mix (the rest is L1).
        ssim_window: SSIM Gaussian window size (pixels, odd; std 1.5 px).
        ssim_range: dynamic range L given to SSIM, whose stabilising constants are ``(0.01 L)^2`` and
            ``(0.03 L)^2``. L = 1 is standard SSIM (the paper). With it, sensor noise (std ~0.01-0.03 in
            sRGB) rivals the constants in flat regions, so the term rewards depths that put some slice
            exactly in focus (the AIF can then copy that slice's noise) and pulls depth onto the slices.
            A larger L makes the term closer to a windowed L2 (the Gaussian-noise likelihood) and
            insensitive to noise.
        log_sigma_px: std of the Gaussian in the Laplacian-of-Gaussian (pixels).
        render_mode: renderer mode (``focalstack.optics.render_stack``): ``"gather"``, ``"scatter"`` (the
            paper's layer) or ``"levels"`` (untruncated Gaussian, for blur beyond a 7 x 7 window's 3 px
            reach, e.g. the DSLR stacks of the accuracy protocol; its cost is in the large-blur table of
            ``python -m benchmarks.render``) or ``"layered"``: occlusion-aware, depth cut into soft layers
            ``layer_step_px`` of PSF radius apart, each blurred uniformly and composited far to near
            (:func:`focalstack.optics.render_layered`: a near surface's blur spreads over a farther one,
            which the per-pixel modes cannot render; costlier). Fronto-parallel renders (the depth
            sweep) are the same uniform blur, and use ``"gather"``.
        layer_step_px: with ``"layered"``, the largest PSF-radius change between neighbouring layers
            (pixels at the rendered size); sets the layer count, at most ``max_layers``.
        max_layers: with ``"layered"``, the most layers (cost grows linearly with them).
        layered_fill_hidden: with ``"layered"``, continue each layer behind the clearly nearer pixels
            around it (``fill_hidden`` of :func:`focalstack.optics.render_layered`), so a farther surface
            shows through a nearer one's blurred edge, as through a real lens. With it the layered fit
            (``python -m benchmarks.accuracy --fit-rows layered-fill``) brings test data B from the
            default fit's 0.352 to 0.307 slices, and Bsim from 0.430 to 0.333; off by default because
            accuracy set A is rendered without it (its hidden parts are divided out, as this renderer
            does without it), and there the layered fit with it loses (0.941 / 0.079 / 0.158 ->
            0.934 / 0.089 / 0.177: δ1 / AbsRel / slices) at 3x the time (README, "Filling hidden
            surfaces in the layered renderer").
        psf: renderer point-spread function, ``"gaussian"`` or ``"disc"``.
        kernel_size: renderer window (pixels, odd) or ``None`` for the renderer's automatic size.
        linear_light: re-render in linear light (the AIF is linearised, blurred and re-encoded as sRGB),
            as real optics blur irradiance and as ``focalstack synth`` renders by default; False blurs
            the sRGB values as the paper did.
        coarse_aif: ``"hard"`` (paper: per pixel the slice with the smallest predicted blur; no gradient
            to depth) or ``"soft"`` (softmin over the blur; differentiable in depth).
        coarse_temperature_px: softmin temperature in pixels of blur std (``"soft"`` only).
        focus_prior_weight: weight of the focus prior (not in the paper; 0 disables): a
            confidence-weighted L1 between the predicted ``t`` and the classical depth-from-focus peak of
            the INPUT stack. It uses only the stack, like the coarse AIF, and speeds up learning depth.
        focus_prior_window: focus-measure window (pixels, odd) of the focus prior.
        focus_prior_target: what the focus prior pulls ``t`` towards: ``"dff"`` (the focus-measure
            peak) or ``"sweep"`` (:func:`~focalstack.losses.depth_sweep` with the predicted AIF, detached:
            the depth whose re-rendering through this renderer best explains every slice in a window,
            i.e. the global optimum of the reconstruction term per pixel, which gradient descent alone
            does not find). Its confidence is the focus measure's either way.
        sweep_candidates: depth hypotheses of the sweep target.
        sweep_window_px: std (pixels) of the sweep's (smallest) Gaussian error window.
        sweep_levels: number of error windows the sweep adds up (stds ``sweep_window_px * 4**k``;
            see :func:`~focalstack.losses.depth_sweep`).
        sweep_normalise: the sweep normalises each pixel's errors before aggregating (``normalise``
            of :func:`~focalstack.losses.depth_sweep`).
        sweep_penalties: ``(p1, p2)`` of the sweep's semi-global aggregation (``penalties`` of
            :func:`~focalstack.losses.depth_sweep`) or ``None`` for none.
        sweep_noise_levels: intensities at which ``focalstack.inference.fit`` measures what noise alone
            does to its sweep (``noise_bias`` of :func:`~focalstack.losses.depth_sweep`): sensor noise
            depends on the signal (shot noise; the sRGB curve amplifies it in shadows), so one textureless
            reference per intensity level, each with that level's noise
            (:func:`focalstack.utils.noise.noise_profile`). 1: a single reference with the stack's mean
            colour and overall noise. Only the fit's sweep (with ``sweep_penalties``) uses it.
        sweep_residual_blur_px: std (pixels) of a Gaussian low-pass applied to each hypothesis's
            residual (re-rendering minus input) before it is squared (0: none). Defocus differences
            between hypotheses lie mostly at low and middle frequencies, white sensor noise at all, so
            filtering first keeps most of the evidence and drops most of the noise's variance.
        sweep_relative_beyond_focus: for hypotheses nearer than the nearest focus distance, the sweep
            re-renders the least-blurred slice itself, blurring it for each slice ``s`` by
            ``sqrt(sigma_s^2 - min_s sigma_s^2)`` (:func:`~focalstack.losses.rendering.blur_beyond_focus`),
            instead of the AIF as if it were sharp: no slice is sharp there, so a focus-stacked AIF is
            blurred too, such hypotheses re-render too blurred, and the sweep puts surfaces nearer than
            every focus distance too far. Other hypotheses are rendered as before.
    """

    recon_weight: float = 1e3
    aif_weight: float = 1e2
    sharpness_weight: float = 1.0
    smooth_weight: float = 10.0
    smooth_beta: float = 2.5
    ssim_mix: float = 0.85
    ssim_window: int = 7
    ssim_range: float = 1.0
    log_sigma_px: float = 1.0
    render_mode: Literal["gather", "scatter", "levels", "layered"] = "gather"
    layer_step_px: float = 0.5
    max_layers: int = 64
    layered_fill_hidden: bool = False
    psf: Literal["gaussian", "disc"] = "gaussian"
    kernel_size: int | None = 7
    linear_light: bool = False
    coarse_aif: Literal["hard", "soft"] = "hard"
    coarse_temperature_px: float = 0.25
    focus_prior_weight: float = 0.0
    focus_prior_window: int = 9
    focus_prior_target: Literal["dff", "sweep"] = "dff"
    sweep_candidates: int = 16
    sweep_window_px: float = 2.0
    sweep_levels: int = 1
    sweep_normalise: bool = False
    sweep_penalties: tuple[float, float] | None = None
    sweep_noise_levels: int = 6
    sweep_residual_blur_px: float = 0.0
    sweep_relative_beyond_focus: bool = False

    def __post_init__(self) -> None:
        if self.coarse_aif not in ("hard", "soft"):
            raise ValueError(f"coarse_aif must be 'hard' or 'soft', got {self.coarse_aif!r}")
        if self.coarse_temperature_px <= 0 or self.log_sigma_px <= 0:
            raise ValueError("coarse_temperature_px and log_sigma_px must be > 0")
        if not 0.0 <= self.ssim_mix <= 1.0:
            raise ValueError(f"ssim_mix must be in [0, 1], got {self.ssim_mix}")
        if not self.ssim_range > 0:
            raise ValueError(f"ssim_range must be > 0, got {self.ssim_range}")
        if self.render_mode not in ("gather", "scatter", "levels", "layered"):
            raise ValueError(
                f"render_mode must be 'gather', 'scatter', 'levels' or 'layered', got {self.render_mode!r}"
            )
        if not self.layer_step_px > 0 or self.max_layers < 2:
            raise ValueError(
                f"need layer_step_px > 0 and max_layers >= 2, got {self.layer_step_px}, {self.max_layers}"
            )
        if self.render_mode == "levels" and self.psf != "gaussian":
            raise ValueError("render_mode 'levels' renders the Gaussian PSF only")
        if self.focus_prior_target not in ("dff", "sweep"):
            raise ValueError(f"focus_prior_target must be 'dff' or 'sweep', got {self.focus_prior_target!r}")
        if self.sweep_candidates < 3 or self.sweep_window_px < 0 or self.sweep_levels < 1:
            raise ValueError("need sweep_candidates >= 3, sweep_window_px >= 0 and sweep_levels >= 1")
        if self.sweep_residual_blur_px < 0:
            raise ValueError(f"sweep_residual_blur_px must be >= 0, got {self.sweep_residual_blur_px}")
        if self.sweep_noise_levels < 1:
            raise ValueError(f"sweep_noise_levels must be >= 1, got {self.sweep_noise_levels}")
        penalties = self.sweep_penalties
        if penalties is not None and not 0 <= penalties[0] <= penalties[1]:
            raise ValueError(f"sweep_penalties must be (p1, p2) with 0 <= p1 <= p2, got {penalties}")
        if self.ssim_window < 3 or self.ssim_window % 2 == 0:
            raise ValueError(f"ssim_window must be odd and >= 3, got {self.ssim_window}")


class LossOutput(NamedTuple):
    """Everything one loss evaluation computed, so a trainer can log images without rendering twice.

    Attributes:
        terms: weighted loss terms ``recon``, ``aif``, ``sharpness``, ``smooth`` and their sum ``total``.
        render: (B, S, 3, H, W) the stack re-rendered from the predicted AIF and depth.
        sigma_px: (B, S, H, W) predicted blur std per slice (pixels).
        coarse_aif: (B, 3, H, W) the coarse AIF the predicted AIF was compared with.
    """

    terms: dict[str, torch.Tensor]
    render: torch.Tensor
    sigma_px: torch.Tensor
    coarse_aif: torch.Tensor


def photometric_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    ssim_mix: float = 0.85,
    window: int = 7,
    ssim_range: float = 1.0,
) -> torch.Tensor:
    """``ssim_mix * (1 - SSIM) + (1 - ssim_mix) * L1``, averaged over everything.

    Args:
        pred, target: (..., C, H, W) images in [0, 1] (leading dimensions are flattened).
        ssim_mix: share of the SSIM part.
        window: SSIM Gaussian window size (pixels).
        ssim_range: dynamic range given to SSIM (scales its stabilising constants; see
            :class:`LossConfig`).

    Returns:
        Scalar tensor; 0 when ``pred == target``.
    """
    if pred.shape != target.shape or pred.dim() < 4:
        raise ValueError(f"pred and target need one (..., C, H, W) shape, got {pred.shape}, {target.shape}")
    p, t = pred.flatten(0, -4), target.flatten(0, -4)
    l1 = (p - t).abs().mean()
    if ssim_mix == 0:
        return l1
    dssim = 1.0 - kornia.metrics.ssim(p, t, window, max_val=ssim_range).mean()
    return ssim_mix * dssim + (1.0 - ssim_mix) * l1


def coarse_aif(
    stack: torch.Tensor, sigma_px: torch.Tensor, mode: str = "hard", temperature_px: float = 0.25
) -> torch.Tensor:
    """Per-pixel composite of the input slices that the predicted depth says are sharpest.

    Args:
        stack: (B, S, C, H, W) input slices.
        sigma_px: (B, S, H, W) predicted blur std of every slice (pixels).
        mode: ``"hard"``: the slice with the smallest blur (piecewise constant in depth: zero gradient);
            ``"soft"``: softmin weights ``softmax(-sigma / temperature)`` over the slices
            (differentiable; tends to ``"hard"`` as the temperature goes to 0).
        temperature_px: softmin temperature in pixels.

    Returns:
        (B, C, H, W) coarse all-in-focus image.
    """
    if stack.dim() != 5 or sigma_px.shape != stack.shape[:2] + stack.shape[3:]:
        raise ValueError(
            f"expected stack (B, S, C, H, W) and sigma (B, S, H, W), got {stack.shape}, {sigma_px.shape}"
        )
    if mode == "hard":
        idx = sigma_px.argmin(dim=1, keepdim=True)  # (B, 1, H, W)
        idx = idx[:, :, None].expand(-1, -1, stack.shape[2], -1, -1)
        return stack.gather(1, idx)[:, 0]
    if mode == "soft":
        if temperature_px <= 0:
            raise ValueError(f"temperature_px must be > 0, got {temperature_px}")
        weights = torch.softmax(-sigma_px / temperature_px, dim=1)
        return (weights[:, :, None] * stack).sum(dim=1)
    raise ValueError(f"mode must be 'hard' or 'soft', got {mode!r}")


def log_sharpness_loss(aif: torch.Tensor, sigma_px: float = 1.0) -> torch.Tensor:
    """Sharpness prior: minus the mean absolute Laplacian-of-Gaussian response of the grey image.

    Sharper images score lower (more negative), so minimising it favours detail in the AIF.

    Args:
        aif: (B, C, H, W) image in [0, 1].
        sigma_px: std of the pre-smoothing Gaussian (pixels); suppresses pixel noise.

    Returns:
        Scalar tensor <= 0.
    """
    if aif.dim() != 4:
        raise ValueError(f"aif must be (B, C, H, W), got {tuple(aif.shape)}")
    grey = aif.mean(dim=1, keepdim=True)
    ksize = 2 * int(3.0 * sigma_px + 0.5) + 1
    smooth = kornia.filters.gaussian_blur2d(grey, ksize, (sigma_px, sigma_px), border_type="replicate")
    return -kornia.filters.laplacian(smooth, 3, border_type="replicate").abs().mean()


def edge_aware_smoothness(t: torch.Tensor, image: torch.Tensor, beta: float = 2.5) -> torch.Tensor:
    """Edge-aware first-order smoothness ``mean |dt| exp(-beta |dI|)`` over x and y.

    Forward differences are used on purpose: central differences (kornia's ``"diff"`` mode) cannot see
    a one-pixel checkerboard, which a per-pixel depth optimisation would then be free to grow.

    Args:
        t: (B, 1, H, W) normalised inverse depth (camera independent: "slice units").
        image: (B, C, H, W) guide image; its gradients are not propagated.
        beta: edge sensitivity.

    Returns:
        Scalar tensor >= 0; 0 for a constant ``t``.
    """
    if t.dim() != 4 or t.shape[1] != 1 or image.dim() != 4 or image.shape[-2:] != t.shape[-2:]:
        raise ValueError(f"expected t (B, 1, H, W) and image (B, C, H, W), got {t.shape} and {image.shape}")
    img = image.detach()
    loss = t.new_zeros(())
    for dim in (-1, -2):
        dt = t.diff(dim=dim).abs()
        weight = torch.exp(-beta * img.diff(dim=dim).abs().mean(dim=1, keepdim=True))
        loss = loss + (dt * weight).mean()
    return loss


def focus_prior(
    stack: torch.Tensor,
    t: torch.Tensor,
    focus_m: torch.Tensor,
    depth_range_m: torch.Tensor,
    window: int = 9,
    tau: float = 10.0,
    target_t: torch.Tensor | None = None,
) -> torch.Tensor:
    """Confidence-weighted L1 between ``t`` and the depth-from-focus peak of the input stack.

    The target is, per pixel, the sub-slice position of the focus-measure peak in normalised inverse
    depth ``u`` (``focalstack.utils.focus``); the confidence ``((max - min) / (max + min + tau floor))^4``
    of the focus measure over the slices is ~0 in textureless regions, where DFF is meaningless. The
    floor is the stack's own focus-measure noise level (:func:`~focalstack.utils.focus.focus_floor`),
    so the confidence does not depend on image contrast or resolution.

    Args:
        stack: (B, S, 3, H, W) input slices.
        t: (B, 1, H, W) predicted normalised inverse depth.
        focus_m: (B, S) focus distances in metres.
        depth_range_m: (B, 2) working range (near, far) in metres.
        window: focus-measure window (pixels, odd).
        tau: multiple of the stack's focus-measure floor below which confidence fades.
        target_t: optional (B, 1, H, W) target in normalised inverse depth replacing the DFF peak (the
            confidence stays the focus measure's).

    Returns:
        Scalar tensor (0 when ``t`` equals the DFF peak wherever it is confident).
    """
    with torch.no_grad():
        u = focus_to_u(focus_m, depth_range_m).to(t.dtype)
        targets, confs = [], []
        for b in range(stack.shape[0]):
            fm = focus_measure(stack[b], window=window)  # (S, H, W)
            targets.append(focus_peak(fm, u[b]) if target_t is None else target_t[b, 0].to(t.dtype))
            hi, lo = fm.amax(dim=0), fm.amin(dim=0)
            confs.append(((hi - lo) / (hi + lo + tau * focus_floor(fm))) ** 4)
        target, conf = torch.stack(targets)[:, None], torch.stack(confs)[:, None]
    return (conf * (t - target).abs()).sum() / conf.sum().clamp_min(1e-6)


def _check_batch(inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]) -> None:
    extra, missing = set(inputs) - INPUT_KEYS, INPUT_KEYS - set(inputs)
    if extra or missing:
        raise ValueError(
            f"losses take exactly batch['inputs'] {sorted(INPUT_KEYS)} (ground truth must never reach a "
            f"loss); unexpected {sorted(extra)}, missing {sorted(missing)}"
        )
    extra, missing = set(outputs) - OUTPUT_KEYS, OUTPUT_KEYS - set(outputs)
    if extra or missing:
        raise ValueError(
            f"outputs must have exactly {sorted(OUTPUT_KEYS)}; "
            f"unexpected {sorted(extra)}, missing {sorted(missing)}"
        )
    stack, aif, depth = inputs["stack"], outputs["aif"], outputs["depth_m"]
    if stack.dim() != 5 or stack.shape[2] != 3 or stack.shape[1] < 2:
        raise ValueError(f"inputs['stack'] must be (B, S >= 2, 3, H, W), got {tuple(stack.shape)}")
    B, S, _, H, W = stack.shape
    expected = {
        "focus_m": (B, S),
        "focal_length_m": (B,),
        "f_number": (B,),
        "pixel_size_m": (B,),
        "depth_range_m": (B, 2),
    }
    for key, shape in expected.items():
        if tuple(inputs[key].shape) != shape:
            raise ValueError(f"inputs[{key!r}] must have shape {shape}, got {tuple(inputs[key].shape)}")
    if tuple(aif.shape) != (B, 3, H, W) or tuple(depth.shape) != (B, 1, H, W):
        raise ValueError(
            f"outputs must be aif (B, 3, H, W) and depth_m (B, 1, H, W) with (B, H, W) = {(B, H, W)}, got "
            f"{tuple(aif.shape)} and {tuple(depth.shape)}"
        )


def self_supervised_losses_detailed(
    inputs: dict[str, torch.Tensor],
    outputs: dict[str, torch.Tensor],
    cfg: LossConfig,
    *,
    blur_scale: torch.Tensor | float | None = None,
) -> LossOutput:
    """All self-supervised terms plus the intermediate images (see :func:`self_supervised_losses`).

    Args:
        inputs: ``batch["inputs"]`` exactly (docs/CONVENTIONS.md); any other key raises ``ValueError``.
        outputs: ``{"aif": (B, 3, H, W) sRGB in [0, 1], "depth_m": (B, 1, H, W) metres}``.
        cfg: weights and renderer options.
        blur_scale: optional factor on every blur std, a scalar or a (B,) tensor with one factor per item
            (per-scene fitting or training of cameras with unknown pixel pitch / aperture).

    Returns:
        :class:`LossOutput` with weighted terms, the re-rendered stack, the blur and the coarse AIF.
    """
    _check_batch(inputs, outputs)
    stack, aif, depth = inputs["stack"], outputs["aif"], outputs["depth_m"]
    sigma = blur_px(inputs, depth, blur_scale)
    if cfg.render_mode == "layered":
        render = rerender_layered(aif, inputs, depth, cfg, blur_scale)
    else:
        render = rerender(aif, sigma, cfg)
    coarse = coarse_aif(stack, sigma, cfg.coarse_aif, cfg.coarse_temperature_px)
    t = depth_to_t(depth, inputs["depth_range_m"])
    photo = (cfg.ssim_mix, cfg.ssim_window, cfg.ssim_range)
    terms = {
        "recon": cfg.recon_weight * photometric_loss(render, stack, *photo),
        "aif": cfg.aif_weight * photometric_loss(aif, coarse, *photo),
        "sharpness": cfg.sharpness_weight * log_sharpness_loss(aif, cfg.log_sigma_px),
        "smooth": cfg.smooth_weight * edge_aware_smoothness(t, aif, cfg.smooth_beta),
    }
    if cfg.focus_prior_weight > 0:
        target = None
        if cfg.focus_prior_target == "sweep":
            swept = depth_sweep(
                inputs,
                aif.detach().clamp(0, 1),
                loss=cfg,
                candidates=cfg.sweep_candidates,
                window_sigma_px=cfg.sweep_window_px,
                window_levels=cfg.sweep_levels,
                normalise=cfg.sweep_normalise,
                penalties=cfg.sweep_penalties,
                blur_scale=blur_scale,
            )
            target = depth_to_t(swept, inputs["depth_range_m"])
        prior = focus_prior(
            stack, t, inputs["focus_m"], inputs["depth_range_m"], cfg.focus_prior_window, target_t=target
        )
        terms["focus_prior"] = cfg.focus_prior_weight * prior
    terms["total"] = sum(terms.values())
    return LossOutput(terms, render, sigma, coarse)


def self_supervised_losses(
    inputs: dict[str, torch.Tensor],
    outputs: dict[str, torch.Tensor],
    cfg: LossConfig,
    *,
    blur_scale: torch.Tensor | float | None = None,
) -> dict[str, torch.Tensor]:
    """Weighted self-supervised loss terms of DAIF-Net.

    Terms (each already multiplied by its ``cfg`` weight): ``recon`` (every slice re-rendered from the
    predicted AIF and depth through the lens vs the input slice), ``aif`` (AIF vs coarse AIF),
    ``sharpness`` (LoG prior, <= 0), ``smooth`` (edge-aware smoothness of the normalised inverse depth),
    and ``total``. Use :func:`self_supervised_losses_detailed` to also get the rendered stack.

    Args:
        inputs: ``batch["inputs"]`` exactly (stack (B, S, 3, H, W), focus_m (B, S), focal_length_m,
            f_number, pixel_size_m (B,), depth_range_m (B, 2)); other keys raise ``ValueError``.
        outputs: ``{"aif": (B, 3, H, W), "depth_m": (B, 1, H, W)}``.
        cfg: weights and renderer options.
        blur_scale: optional factor on every blur std (scalar or (B,)).

    Returns:
        dict of scalar tensors.
    """
    return self_supervised_losses_detailed(inputs, outputs, cfg, blur_scale=blur_scale).terms
