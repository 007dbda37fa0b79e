"""Where the fit's error on test data B lies: near depth edges, in weak texture, or elsewhere.

For B (``../shared/data/lightfield/antinous_stack``) and Bsim (its true AIF and depth re-rendered through
focalstack's own lens model, ``scripts/make_accuracy_data.py``) it scores the fit's start (the depth
sweep, ``focalstack.inference.fit.initial_estimate``) and the default fit, and splits each one's error
(slices) into three disjoint regions:

- ``edge``: pixels within ``--band-px`` of a depth edge, where the true inverse depth of two neighbouring
  pixels differs by more than half a slice spacing. There a blurred nearer surface spreads over the
  farther one, which no single depth per pixel re-renders;
- ``flat``: the least-textured quarter of all pixels (:func:`benchmarks.noise_analysis.flat_quarter`),
  outside the edge band;
- ``rest``: everything else.

Per region: ``*_frac`` its share of the pixels, ``*_err`` its mean error, ``*_share`` its share of the
total error and ``*_signed`` the median signed error (slices, positive = too near). If B and Bsim score
alike, B's error comes from the scene, not from the synthetic aperture's optics. It reads ground truth,
as an analysis.

With ``--objective`` it scores what the fit's data term prefers instead: the layered renderer's
re-rendering error of the true depth, of the sweep's depth and of the default start (halos retracted),
from the true AIF and from the sweep's, per region, with and without ``LossConfig.layered_fill_hidden``.

With ``--starts`` it asks which part of the start limits the fit instead: both fits (the default's
per-pixel renderer and the occlusion-aware layered one, ``render_mode="layered"``) started from the
sweep's depth, from the true depth, and from each mixed with the other along the edge band (true depth
in the band and the sweep's elsewhere, and the reverse), and the layered fit at full size only from the
true depth (the coarse-to-fine fit first shrinks its start, which blurs the start's edges). Every fit
starts from the sweep's AIF (focus stacking), so only the start's depth differs; missing true depths
take the median.

    python -m benchmarks.edge_analysis [--iterations 30] [--band-px 8] [--starts | --objective]
        [--sets B Bsim]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks._common import REPO, machine_info, markdown_table, save
from benchmarks.accuracy import ANTINOUS, true_start_depth
from benchmarks.fit_procedural import fit_config
from benchmarks.noise_analysis import flat_quarter, signed_slices
from focalstack.data.stack import FocalStack
from focalstack.eval.metrics import mean_diopter_spacing, valid_mask
from focalstack.inference.fit import fit_scene, initial_estimate

REGIONS = ("edge", "flat", "rest")
COLUMNS = ["set", "estimate", "error_slices"] + [
    f"{r}_{k}" for r in REGIONS for k in ("frac", "err", "share", "signed")
]


def edge_band(inverse_slices: torch.Tensor, band_px: int, jump: float = 0.5) -> torch.Tensor:
    """(H, W) mask of the pixels within ``band_px`` of a depth edge.

    Args:
        inverse_slices: (H, W) true inverse depth in slice spacings.
        band_px: half width of the band, pixels (0: the edge pixels only).
        jump: a step between 4-neighbours larger than this (slices) is an edge.
    """
    edge = torch.zeros_like(inverse_slices, dtype=torch.bool)
    dy = (inverse_slices[1:] - inverse_slices[:-1]).abs() > jump
    dx = (inverse_slices[:, 1:] - inverse_slices[:, :-1]).abs() > jump
    edge[1:] |= dy
    edge[:-1] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    k = 2 * band_px + 1
    return F.max_pool2d(edge[None, None].float(), k, stride=1, padding=band_px)[0, 0] > 0


def regions(stack: FocalStack, band_px: int) -> dict[str, torch.Tensor]:
    """The disjoint ``edge``, ``flat`` and ``rest`` masks (H, W) of a stack with ground truth."""
    spacing = mean_diopter_spacing(stack.focus_m)
    valid = valid_mask(stack.depth_m)
    edge = edge_band(1.0 / stack.depth_m.clamp_min(1e-6) / spacing, band_px) & valid
    flat = flat_quarter(stack.aif) & valid & ~edge
    return {"edge": edge, "flat": flat, "rest": valid & ~edge & ~flat}


def split_error(depth: torch.Tensor, stack: FocalStack, masks: dict[str, torch.Tensor]) -> dict[str, float]:
    """The error (slices) of ``depth`` in all valid pixels and per region (see the module docstring)."""
    signed = signed_slices(depth, stack)
    valid = valid_mask(stack.depth_m)
    total = signed[valid].abs().sum()
    row = {"error_slices": float(signed[valid].abs().mean())}
    for name, m in masks.items():
        some = bool(m.any())
        row[f"{name}_frac"] = float(m.sum() / valid.sum())
        row[f"{name}_err"] = float(signed[m].abs().mean()) if some else float("nan")
        row[f"{name}_share"] = float(signed[m].abs().sum() / total.clamp_min(1e-12))
        row[f"{name}_signed"] = float(signed[m].median()) if some else float("nan")
    return row


def set_rows(stack: FocalStack, name: str, iterations: int, band_px: int) -> list[dict]:
    """The start's and the default fit's rows of one stack."""
    cfg = fit_config(iterations, {})
    masks = regions(stack, band_px)
    start, _ = initial_estimate(stack, cfg)
    fit = fit_scene(stack, cfg, progress=False).depth_m
    return [
        {"set": name, "estimate": label, **split_error(depth, stack, masks)}
        for label, depth in (("start", start), (f"fit ({iterations} it/scale)", fit))
    ]


LAYERED = {"render_mode": "layered"}
#: --starts: (row label, fit changes) of the two renderers.
RENDERERS = (("fit", {}), ("layered fit", LAYERED))


def start_rows(stack: FocalStack, name: str, iterations: int, band_px: int) -> list[dict]:
    """The sweep's row, and both renderers' fits from starts true in parts (module docstring)."""
    masks = regions(stack, band_px)
    # the sweep's own depth, as measured in session 23, before the default retracted its halos
    sweep, aif = initial_estimate(stack, fit_config(iterations, {"retract_halos": False}))
    truth = true_start_depth(stack)
    band = masks["edge"]
    starts = {
        "the sweep": sweep,
        "the true depth": truth,
        "the true depth in the edge band, the sweep's elsewhere": torch.where(band, truth, sweep),
        "the sweep's depth in the edge band, the truth elsewhere": torch.where(band, sweep, truth),
    }
    rows = [{"set": name, "estimate": "start: the sweep", **split_error(sweep, stack, masks)}]
    for renderer, changes in RENDERERS:
        cfg = fit_config(iterations, changes)
        for label, start in starts.items():
            fit = fit_scene(stack, cfg, init_depth_m=start, init_aif=aif, progress=False).depth_m
            row = {"set": name, "estimate": f"{renderer} from {label}", **split_error(fit, stack, masks)}
            rows.append(row)
    # the coarse scales blur a sharp start's edges before the full-size fit sees them
    fine = fit_config(iterations, {**LAYERED, "scales": (1,)})
    fit = fit_scene(stack, fine, init_depth_m=truth, init_aif=aif, progress=False).depth_m
    label = "layered fit at full size only (scales (1,)) from the true depth"
    return rows + [{"set": name, "estimate": label, **split_error(fit, stack, masks)}]


#: --objective: (label, LossConfig.layered_fill_hidden) of the layered renderer's two ways at hidden surfaces.
OBJECTIVE_RENDERERS = (("holes divided out", False), ("hidden surfaces filled", True))
OBJECTIVE_COLUMNS = ["set", "renderer", "depth", "aif", "all", "edge", "flat", "rest"]


def objective_rows(stack: FocalStack, name: str, iterations: int, band_px: int) -> list[dict]:
    """The layered renderer's squared re-rendering error (sRGB, mean over channels, summed over the
    slices) of the true depth and of the fit's starts, per region, from the true AIF and the sweep's,
    with the renderer dividing out what a near edge's blur uncovers and with it filling that in."""
    from focalstack.inference.fit import _halo_retracted, _started
    from focalstack.losses.rendering import rerender_layered

    masks = {"all": valid_mask(stack.depth_m), **regions(stack, band_px)}
    # one sweep; the default start is it with its halos retracted, as the fit does after the sweep
    kept = fit_config(iterations, {"retract_halos": False})
    full, _, cfg, (sweep, aif) = _started(stack, kept, torch.device("cpu"))
    depths = {
        "the true depth": true_start_depth(stack),
        "the sweep's depth (halos kept)": sweep,
        "the default start (halos retracted)": _halo_retracted(sweep, aif, full, cfg),
    }
    rows = []
    for renderer, fill in OBJECTIVE_RENDERERS:
        loss = dataclasses.replace(cfg.loss, layered_fill_hidden=fill)
        for aif_label, source in (("true", stack.aif.to(aif)), ("the sweep's", aif)):
            for label, depth in depths.items():
                with torch.no_grad():
                    render = rerender_layered(source[None], full, depth[None, None].to(aif), loss)
                error = (render - full["stack"])[0].square().mean(dim=1).sum(dim=0)
                errors = {k: float(error[m].mean()) for k, m in masks.items()}
                rows.append({"set": name, "renderer": renderer, "depth": label, "aif": aif_label, **errors})
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--b", type=Path, default=ANTINOUS, help="test data B")
    parser.add_argument("--bsim", type=Path, default=REPO / "data" / "accuracy" / "Bsim" / "antinous_stack")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--band-px", type=int, default=8)
    parser.add_argument("--starts", action="store_true", help="fits from starts true in parts")
    parser.add_argument("--objective", action="store_true", help="re-rendering error of truth and starts")
    parser.add_argument("--sets", nargs="+", choices=("B", "Bsim"), default=["B", "Bsim"])
    parser.add_argument("--out", default=str(REPO / "bench_out" / "edge_analysis.json"))
    parser.add_argument("--md", default=str(REPO / "docs" / "results" / "edge_analysis.md"))
    args = parser.parse_args(argv)
    if args.band_px < 0:
        parser.error(f"--band-px must be >= 0, got {args.band_px}")
    torch.set_num_threads(2)
    rows = []
    folders = {"B": args.b, "Bsim": args.bsim}
    for name in args.sets:
        folder = folders[name]
        if not (folder / "scene.json").is_file():
            parser.error(f"{folder} is not a scene folder (Bsim: run scripts/make_accuracy_data.py)")
        run = objective_rows if args.objective else start_rows if args.starts else set_rows
        rows += run(FocalStack.load(folder), name, args.iterations, args.band_px)
    if args.objective:
        return written(args, rows, objective_caption(args.band_px) + markdown_table(rows, OBJECTIVE_COLUMNS))
    what = (
        f"the default fit and the layered fit ({args.iterations} it/scale) from starts true in parts "
        "(every fit from the sweep's AIF)"
        if args.starts
        else "the fit's start (depth sweep) and the default fit"
    )
    on = " and ".join(args.sets) + (
        " (B's truth through focalstack's own lens model)" * ("Bsim" in args.sets)
    )
    table = (
        f"Error (slices) of {what} on {on}, split into: edge, within {args.band_px} px of a depth edge (a "
        "jump > 0.5 slices); flat, the least-textured quarter of the pixels outside that band; rest. frac: "
        "share of the pixels; err: mean error; share: share of the total error; signed: median signed "
        "error (positive = too near).\n\n" + markdown_table(rows, COLUMNS)
    )
    return written(args, rows, table)


def objective_caption(band_px: int) -> str:
    """The --objective table's caption."""
    return (
        "Re-rendering error of the occlusion-aware layered renderer (the fit's camera, PSF and linear "
        "light; squared sRGB error, mean over channels, summed over the slices, mean over the region's "
        "pixels) of the true depth and of the fit's starts, from the true AIF and from the sweep's, with "
        "the renderer dividing out what a near surface's blurred edge uncovers of a farther one (holes "
        "divided out, the fit's default) or continuing the farther one behind it (hidden surfaces filled, "
        "LossConfig.layered_fill_hidden); "
        f"regions as in the edge analysis (edge: within {band_px} px of a depth edge). Lower is "
        "what the fit's data term prefers.\n\n"
    )


def written(args: argparse.Namespace, rows: list[dict], table: str) -> dict:
    """Save ``rows`` (JSON, with the machine and arguments) and ``table`` (markdown); return the payload."""
    payload = {"machine": machine_info(), "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
    save(args.out, args.md, payload, table)
    return payload


if __name__ == "__main__":
    main()
