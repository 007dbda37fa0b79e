"""Held-out-slice evaluation: score depth + AIF on real stacks that have no ground truth.

For each held-out slice ``i`` of a stack with known focus distances: predict depth and AIF from the
other slices only, re-render slice ``i`` at its focus distance through the thin lens
(``depth_to_sigma_px`` + ``render_stack``, via ``focalstack.optics.render_from_depth``) and compare it
with the real photo (PSNR, SSIM). Methods:

- ``network``: the trained model (``focalstack.inference.predict.predict``);
- ``dff``: classical depth from focus + Laplacian-pyramid focus stacking, rendered the same way;
- ``fit``: per-scene optimisation (``focalstack.inference.fit.fit_scene``);
- ``nearest``: no rendering, the remaining slice nearest to slice ``i`` in diopters (the bar to beat);
- ``gt``: the scene's ground-truth depth and AIF (synthetic scenes; an upper bound for the renderer).

Blur scale: with a complete camera the lens is used as is (factor 1). When the pixel pitch or
f-number is unknown (phones), the camera is completed with nominal values
(``focalstack.inference.fit.resolve_camera``) and one factor on every blur std is chosen per method and
held-out slice by a 1-D search that best re-renders the REMAINING slices; the held-out slice is never
used for it. The report says which was done.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from focalstack.eval.metrics import psnr, ssim
from focalstack.optics import ThinLens, render_from_depth

METHODS = ("network", "dff", "fit", "nearest", "gt")
#: Blur-scale search: log2 factor range around the nominal camera, grid step, refinement steps.
_SEARCH_LOG2_RANGE = 4.0
_SEARCH_GRID_STEP = 1.0
_SEARCH_REFINE = 6
#: Long side (pixels) of the images used for the blur-scale search.
_SEARCH_MAX_SIZE = 128


@dataclass
class HoldoutConfig:
    """Options of the held-out-slice evaluation.

    Attributes:
        methods: subset of ``METHODS``.
        slices: indices to hold out (default: every interior slice, 1 .. S - 2).
        psf: renderer PSF, "gaussian" or "disc".
        kernel_size: renderer window in pixels (None: sized to the largest blur).
        max_size: downscale so the longer side is at most this (the pixel pitch scales accordingly).
        blur_scale: "auto" (estimate only when the camera is incomplete), "estimate" (always, even with a
            complete camera) or "camera" (never; needs a complete camera).
        checkpoint: weights for ``network`` / ``fit`` initialisation (None: the shipped default).
        device: torch device for ``network`` and ``fit``.
        fit_kwargs: ``FitConfig`` overrides for ``fit`` (e.g. ``{"iterations": 100}``). ``fit`` renders
            with ``psf`` (not its own per-stack choice) unless ``fit_kwargs`` sets ``psf``, so that the
            depth it fits is scored through the renderer it was fitted with.
        dff_window: focus-measure window of ``dff`` in pixels.
        align: register all slices to the middle one first (``focalstack.data.align``; geometric only,
            it crops to the common region) -- for hand-held stacks and focus breathing.
    """

    methods: tuple[str, ...] = ("network", "dff", "nearest")
    slices: tuple[int, ...] | None = None
    psf: str = "gaussian"
    kernel_size: int | None = None
    max_size: int | None = None
    blur_scale: str = "auto"
    checkpoint: str | None = None
    device: str = "cpu"
    fit_kwargs: dict[str, Any] = field(default_factory=dict)
    dff_window: int = 9
    align: bool = False

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {self.methods}")
        if self.blur_scale not in ("auto", "estimate", "camera"):
            raise ValueError(f"blur_scale must be 'auto', 'estimate' or 'camera', got {self.blur_scale!r}")
        if self.psf not in ("gaussian", "disc"):
            raise ValueError(f"psf must be 'gaussian' or 'disc', got {self.psf!r}")
        if self.max_size is not None and self.max_size < 8:
            raise ValueError(f"max_size must be >= 8 pixels, got {self.max_size}")


def _subset(stack: Any, keep: list[int]) -> Any:
    """The stack restricted to slices ``keep``, without ground truth (predictors must not see it)."""
    return dataclasses.replace(
        stack, images=stack.images[keep], focus_m=stack.focus_m[keep], depth_m=None, aif=None
    )


def _render(
    aif: torch.Tensor,
    depth_m: torch.Tensor,
    focus_m: torch.Tensor,
    camera: ThinLens,
    scale: float,
    cfg: HoldoutConfig,
) -> torch.Tensor:
    """(3, H, W) AIF + (H, W) depth -> (S, 3, H, W) slices at ``focus_m`` (S,) through ``camera``."""
    out = render_from_depth(
        aif[None].float(),
        depth_m[None, None].float(),
        focus_m[None].float(),
        camera.focal_length_m,
        camera.f_number,
        camera.pixel_size_m,
        blur_scale=scale,
        kernel_size=cfg.kernel_size,
        psf=cfg.psf,
    )
    return out[0].clamp(0.0, 1.0)


def estimate_blur_scale(
    images: torch.Tensor,
    focus_m: torch.Tensor,
    depth_m: torch.Tensor,
    aif: torch.Tensor,
    camera: ThinLens,
    cfg: HoldoutConfig,
) -> float:
    """The factor on every blur std that best re-renders ``images`` from ``(depth_m, aif)`` (min MSE).

    A log-spaced grid over ``2^±4`` followed by a golden-section refinement, on copies downscaled to
    at most ``_SEARCH_MAX_SIZE`` pixels (pitch scaled accordingly).

    Args:
        images: (S, 3, H, W) the slices to re-render (never the held-out slice).
        focus_m: (S,) their focus distances in metres.
        depth_m: (H, W) predicted depth in metres; aif: (3, H, W) predicted AIF.
        camera: the (possibly nominal) camera at this resolution.
        cfg: renderer options.

    Returns:
        The blur-scale factor (> 0).
    """
    H, W = images.shape[-2:]
    k = min(1.0, _SEARCH_MAX_SIZE / max(H, W))
    if k < 1.0:
        size = (max(1, round(H * k)), max(1, round(W * k)))
        images = F.interpolate(images, size=size, mode="area")
        aif = F.interpolate(aif[None], size=size, mode="area")[0]
        depth_m = 1.0 / F.interpolate(1.0 / depth_m[None, None], size=size, mode="area")[0, 0]
        camera = camera.scaled(size[1] / W)

    def loss(log2_scale: float) -> float:
        with torch.no_grad():
            out = _render(aif, depth_m, focus_m, camera, 2.0**log2_scale, cfg)
        return float(((out - images) ** 2).mean())

    steps = int(round(_SEARCH_LOG2_RANGE / _SEARCH_GRID_STEP))
    grid = [i * _SEARCH_GRID_STEP for i in range(-steps, steps + 1)]
    values = [loss(g) for g in grid]
    best = min(range(len(grid)), key=values.__getitem__)
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(_SEARCH_REFINE):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(b)
    candidates = [(values[best], grid[best]), (fa, a), (fb, b)]
    return 2.0 ** min(candidates)[1]


def _predictor(method: str, cfg: HoldoutConfig) -> Callable[[Any], tuple[torch.Tensor, torch.Tensor]]:
    """``stack -> (depth_m (H, W), aif (3, H, W))`` for a rendering method."""
    if method == "network":
        from focalstack.inference.predict import predict

        return lambda s: predict(s, checkpoint=cfg.checkpoint, device=cfg.device)
    if method == "dff":
        from focalstack.inference.baselines import dff_predict

        return lambda s: dff_predict(s, window=cfg.dff_window)
    if method == "fit":
        from focalstack.inference.fit import FitConfig, fit_scene

        def run_fit(s: Any) -> tuple[torch.Tensor, torch.Tensor]:
            fit_cfg = FitConfig(**{"estimate_blur_scale": s.camera is None, "psf": cfg.psf, **cfg.fit_kwargs})
            r = fit_scene(s, fit_cfg, progress=False, device=cfg.device)
            return r.depth_m, r.aif

        return run_fit
    if method == "gt":

        def ground_truth(s: Any) -> tuple[torch.Tensor, torch.Tensor]:
            if s.depth_m is None or s.aif is None:
                raise ValueError(f"scene {s.name!r}: method 'gt' needs ground-truth depth and AIF")
            valid = s.depth_m > 0
            if not valid.any():
                raise ValueError(f"scene {s.name!r}: ground-truth depth has no valid pixel")
            # Invalid pixels get the median depth so the renderer sees a finite scene everywhere.
            return torch.where(valid, s.depth_m, s.depth_m[valid].median()), s.aif

        return ground_truth
    raise ValueError(f"unknown method {method!r}")


def _scores(pred: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    a, b = pred[None].double(), real[None].double()
    return {"psnr": float(psnr(a, b)[0]), "ssim": float(ssim(a, b)[0])}


def _mean_scores(rows: list[dict[str, dict[str, float]]], methods: Sequence[str]) -> dict[str, Any]:
    """``{method: {"psnr", "ssim"}}`` averaged over rows of the same form (empty when no rows)."""
    if not rows:
        return {}
    return {m: {k: sum(r[m][k] for r in rows) / len(rows) for k in ("psnr", "ssim")} for m in methods}


def _camera_for(stack: Any, cfg: HoldoutConfig) -> tuple[ThinLens, bool, str]:
    """(camera to render with, whether to estimate the blur scale, explanation)."""
    if stack.camera is not None and cfg.blur_scale != "estimate":
        return stack.camera, False, "camera (scene.json), blur scale 1"
    if stack.camera is None and cfg.blur_scale == "camera":
        raise ValueError(f"scene {stack.name!r}: camera incomplete; use blur_scale 'auto' or 'estimate'")
    from focalstack.inference.fit import resolve_camera

    why = "forced" if stack.camera is not None else "pixel pitch / f-number unknown"
    note = (
        f"blur scale estimated ({why}) per method and held-out slice by a 1-D search that best "
        "re-renders the remaining slices; the held-out slice is never used"
    )
    return resolve_camera(stack, True), True, note


def holdout_stack(
    stack: Any, cfg: HoldoutConfig | None = None, *, progress: bool = True, keep_renders: bool = False
) -> dict[str, Any]:
    """Held-out-slice evaluation of one stack.

    Args:
        stack: a FocalStack with focus distances (at least 3 slices).
        cfg: options (default :class:`HoldoutConfig`).
        progress: show a tqdm bar over held-out slices.
        keep_renders: also return, per held-out slice, ``"renders"``: the real photo and each
            method's re-rendering as (3, H, W) tensors in [0, 1] (for figures; not JSON-serialisable).

    Returns:
        ``{"scene", "size_hw", "camera", "blur_scale_note", "slices": [{"index", "focus_m", "methods":
        {method: {"psnr", "ssim", ...}}}], "mean": {method: {"psnr", "ssim"}}}``.

    Raises:
        ValueError: no focus distances, fewer than 3 slices, or a bad slice index.
    """
    cfg = cfg or HoldoutConfig()
    if stack.focus_m is None:
        raise ValueError(f"scene {stack.name!r}: held-out evaluation needs focus distances")
    S = stack.num_slices
    if S < 3:
        raise ValueError(f"scene {stack.name!r}: need >= 3 slices to hold one out, got {S}")
    if cfg.max_size is not None and max(stack.size) > cfg.max_size:
        stack = stack.resized(cfg.max_size / max(stack.size))
    if cfg.align:
        from focalstack.data.align import align_stack

        stack = align_stack(stack).stack
    indices = list(cfg.slices) if cfg.slices is not None else list(range(1, S - 1))
    bad = [i for i in indices if not -S <= i < S]
    if bad:
        raise ValueError(f"scene {stack.name!r}: slice indices {bad} out of range for {S} slices")
    indices = sorted({i % S for i in indices})
    camera, estimate, note = _camera_for(stack, cfg)
    predictors = {m: _predictor(m, cfg) for m in cfg.methods if m != "nearest"}
    diopters = 1.0 / stack.focus_m

    rows = []
    for i in tqdm(indices, desc=f"hold-out {stack.name}", disable=not progress):
        keep = [j for j in range(S) if j != i]
        rest = _subset(stack, keep)
        real = stack.images[i]
        row: dict[str, Any] = {"index": i, "focus_m": float(stack.focus_m[i]), "methods": {}}
        renders = {"real": real}
        for method in cfg.methods:
            if method == "nearest":
                j = keep[int((diopters[keep] - diopters[i]).abs().argmin())]
                row["methods"][method] = {**_scores(stack.images[j], real), "nearest_slice": j}
                renders[method] = stack.images[j]
                continue
            # Only 'gt' reads the scene's ground truth; every predictor sees the remaining slices only.
            depth, aif = predictors[method](stack if method == "gt" else rest)
            depth, aif = depth.detach().cpu().float(), aif.detach().cpu().float()
            scale = 1.0
            if estimate:
                scale = estimate_blur_scale(rest.images, rest.focus_m, depth, aif, camera, cfg)
            with torch.no_grad():
                rendered = _render(aif, depth, stack.focus_m[i : i + 1], camera, scale, cfg)[0]
            row["methods"][method] = {**_scores(rendered, real), "blur_scale": scale}
            renders[method] = rendered
        if keep_renders:
            row["renders"] = renders
        rows.append(row)

    return {
        "scene": stack.name,
        "size_hw": list(stack.size),
        "aligned": cfg.align,
        "focus_m": [float(f) for f in stack.focus_m],
        "camera": camera.to_dict(),
        "blur_scale_note": note,
        "slices": rows,
        "mean": _mean_scores([r["methods"] for r in rows], cfg.methods),
    }


def find_scenes(path: str | Path) -> list[Path]:
    """``path`` itself when it is a scene folder (has ``stack_*`` files), else its scene sub-folders."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path} is not a folder")
    if any(path.glob("stack_*")):
        return [path]
    scenes = sorted(p for p in path.iterdir() if p.is_dir() and any(p.glob("stack_*")))
    if not scenes:
        raise ValueError(f"{path} holds no scene folder (stack_XX.* files)")
    return scenes


def holdout_eval(
    path: str | Path, cfg: HoldoutConfig | None = None, *, keep_renders: bool = False
) -> dict[str, Any]:
    """Held-out-slice evaluation of every scene under ``path`` (a scene folder or a folder of scenes).

    Scenes without focus distances or with fewer than 3 slices are listed under ``skipped``;
    ``keep_renders`` is passed to :func:`holdout_stack`.

    Returns:
        ``{"protocol", "config", "scenes": [holdout_stack results], "skipped": {name: reason},
        "mean": {method: {"psnr", "ssim"}}}`` -- the mean gives every scene equal weight.
    """
    from focalstack.data.stack import FocalStack

    cfg = cfg or HoldoutConfig()
    results, skipped = [], {}
    scenes = find_scenes(path)
    for folder in tqdm(scenes, desc="scenes", disable=len(scenes) < 2):
        stack = FocalStack.load(folder)
        if stack.focus_m is None:
            skipped[stack.name] = "focus distances unknown"
        elif stack.num_slices < 3:
            skipped[stack.name] = "fewer than 3 slices"
        else:
            results.append(holdout_stack(stack, cfg, keep_renders=keep_renders))
    return {
        "protocol": (
            "leave one slice out, predict from the rest, re-render it at its focus distance through the "
            "thin lens, PSNR (dB) / SSIM against the real photo; 'nearest' = remaining slice nearest in "
            "diopters"
        ),
        "config": {k: v for k, v in vars(cfg).items() if k != "fit_kwargs"} | {"fit": cfg.fit_kwargs},
        "scenes": results,
        "skipped": skipped,
        "mean": _mean_scores([r["mean"] for r in results], cfg.methods),
    }


def holdout_markdown(report: dict[str, Any], methods: Sequence[str] | None = None) -> str:
    """Markdown tables of a :func:`holdout_eval` report: per scene (mean over held-out slices) and mean."""
    methods = list(methods or report["config"]["methods"])
    header = "| scene | slices | " + " | ".join(f"{m} PSNR / SSIM" for m in methods) + " |"
    lines = [
        "# Held-out-slice evaluation",
        "",
        report["protocol"] + ".",
        "",
        header,
        "|---" * (len(methods) + 2) + "|",
    ]

    def cells(mean: dict[str, dict[str, float]]) -> str:
        return " | ".join(f"{mean[m]['psnr']:.2f} / {mean[m]['ssim']:.3f}" for m in methods)

    for r in report["scenes"]:
        lines.append(f"| {r['scene']} | {len(r['slices'])} | {cells(r['mean'])} |")
    if report["mean"]:
        lines.append(f"| **mean** | | {cells(report['mean'])} |")
    lines.append("")
    for r in report["scenes"]:
        lines.append(f"- {r['scene']}: {r['blur_scale_note']}")
    for name, reason in report["skipped"].items():
        lines.append(f"- {name}: skipped ({reason})")
    return "\n".join(lines) + "\n"
