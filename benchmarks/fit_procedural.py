"""Per-scene fitting (no network) on procedural scenes against classical DFF, one change at a time.

A fit optimises depth and AIF of one stack through the renderer with the training losses, so it shows
what the self-supervised objective itself prefers, and what the optimiser finds. Procedural scenes are
rendered in linear light with sensor noise. The variants add, in turn, what the default ``fit`` uses:
the noise-tolerant SSIM range (with standard SSIM the noise rewards depths that put a slice exactly in
focus), re-rendering in linear light (as the data was made, and as real optics blur), and the depth
sweep initialisation (the objective is non-convex; from DFF the fit stays near the slices). Two
variants of the sweep were tried and not adopted: error windows of 2, 8 and 32 px (``sweep_levels=3``;
far better on accuracy set A's train split, whose indoor scenes have wide textureless walls, worse
here and on B), and that with each pixel's errors normalised first (``sweep_normalise``; between the
two). Then the sweep's errors corrected for noise and aggregated semi-globally (``sweep_penalties``,
:func:`focalstack.losses.semi_global_aggregation`), the disc PSF (the geometric-optics blur of a
circular aperture; the rows above re-render with the Gaussian the network trains with; half of the
procedural scenes are rendered with each), the PSF chosen per stack
(:func:`focalstack.losses.select_psf`) and, the last row and the default, the sweep's noise correction
measured per intensity (``sweep_noise_levels``; sensor noise depends on the signal, the rows above
use one reference at the stack's mean colour). Scene sets
are drawn with seeds other than the learning benchmark's held-out seed (validation, not test), each set
scored by delta1, AbsRel and the error in slices, averaged over its scenes.

    python -m benchmarks.fit_procedural [--seeds 777 1001 1002] [--scenes 8 12 12] [--iterations 100]
        [--variants NAME ...] [--merge]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
from tqdm import tqdm

from benchmarks._common import REPO, machine_info, markdown_table, save
from benchmarks.train_procedural import METRICS, heldout_scenes, mean_metrics, scene_metrics
from focalstack.data.procedural import ProceduralConfig
from focalstack.inference.baselines import dff_depth
from focalstack.inference.fit import FitConfig, fit_scene

#: name -> changes to the default FitConfig (None: classical DFF, no fit). Rows before the disc PSF
#: re-render with the Gaussian, rows before the semi-global sweep switch it off
#: (``sweep_penalties=None``), rows before the last keep the AIF prior throughout the fit
#: (``aif_prior="joint"``), so each row adds one change to the one above.
_JOINT_AIF = {"aif_prior": "joint"}
_ONE_NOISE = {"sweep_noise_levels": 1, **_JOINT_AIF}
_GAUSS = {"psf": "gaussian", **_ONE_NOISE}
_WINDOW = {"sweep_penalties": None, **_GAUSS}
VARIANTS: dict[str, dict | None] = {
    "DFF (classical)": None,
    "fit: SSIM range 1, sRGB blur, DFF init": {
        "init": "dff",
        "ssim_range": 1.0,
        "linear_light": False,
        **_WINDOW,
    },
    "fit: + SSIM range 10": {"init": "dff", "linear_light": False, **_WINDOW},
    "fit: + linear-light blur": {"init": "dff", **_WINDOW},
    "fit: + sweep init": _WINDOW,
    "fit: + multi-scale sweep window": {"sweep_levels": 3, **_WINDOW},
    "fit: + normalised multi-scale sweep": {"sweep_levels": 3, "sweep_normalise": True, **_WINDOW},
    "fit: + semi-global sweep": _GAUSS,
    "fit: + disc PSF": {"psf": "disc", **_ONE_NOISE},
    "fit: + PSF chosen per stack": _ONE_NOISE,
    "fit: + noise reference per intensity": _JOINT_AIF,
    "fit: + AIF prior after the depth (default)": {},
}


def fit_config(iterations: int, changes: dict) -> FitConfig:
    """The default FitConfig with ``changes`` applied: FitConfig fields (``init``, ``psf``, ``margin``,
    ...) to it, any other key to its LossConfig."""
    changes = dict(changes)
    own = {f.name for f in dataclasses.fields(FitConfig)} - {"loss", "iterations"}
    top = {k: changes.pop(k) for k in own & changes.keys()}
    cfg = FitConfig(iterations=iterations, **top)
    cfg.loss = dataclasses.replace(cfg.loss, **changes)
    return cfg


def score_set(seed: int, n: int, iterations: int, variants: list[str]) -> list[dict]:
    """Mean metrics of each variant on ``n`` scenes drawn with ``seed``."""
    scenes = heldout_scenes(n, ProceduralConfig(), seed=seed)
    out = []
    for name in variants:
        changes = VARIANTS[name]
        rows = []
        for stack in tqdm(scenes, desc=f"seed {seed}: {name}", leave=False):
            if changes is None:
                depth = dff_depth(stack).float()
            else:
                depth = fit_scene(stack, fit_config(iterations, changes), progress=False).depth_m
            rows.append(scene_metrics(depth, stack))
        out.append({"seed": seed, "scenes": n, "method": name, **mean_metrics(rows)})
    return out


def add_validation_args(parser: argparse.ArgumentParser) -> None:
    """``--seeds`` and ``--scenes``: the procedural validation sets (one scene count per seed)."""
    parser.add_argument("--seeds", type=int, nargs="+", default=[777, 1001, 1002])
    parser.add_argument("--scenes", type=int, nargs="+", default=[8, 12, 12], help="scenes per seed")


def check_validation_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if len(args.scenes) != len(args.seeds):
        parser.error("--scenes needs one count per seed")


def merged(path: str, new: list[dict], args: argparse.Namespace) -> list[dict]:
    """``new`` plus the rows of other variants in the JSON at ``path``, in VARIANTS order per seed.

    Raises:
        SystemExit: the existing file was run with other seeds, scene counts or iterations.
    """
    old = json.loads(Path(path).read_text())
    same = ("seeds", "scenes", "iterations")
    if any(old["args"][k] != getattr(args, k) for k in same):
        raise SystemExit(f"--merge: {path} was run with other {', '.join(same)}")
    keep = [r for r in old["rows"] if r["method"] in VARIANTS and r["method"] not in args.variants]
    order = list(VARIANTS)
    return sorted(keep + new, key=lambda r: (args.seeds.index(r["seed"]), order.index(r["method"])))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_validation_args(parser)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--iterations", type=int, default=100, help="fit iterations per scale")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other variants' rows of an existing --out JSON (same seeds, scenes, iterations)",
    )
    parser.add_argument("--out", default=str(REPO / "bench_out" / "fit_procedural.json"))
    parser.add_argument("--md", default=str(REPO / "docs" / "results" / "fit_procedural.md"))
    args = parser.parse_args(argv)
    check_validation_args(parser, args)
    torch.set_num_threads(args.threads)
    rows = [
        r for s, n in zip(args.seeds, args.scenes) for r in score_set(s, n, args.iterations, args.variants)
    ]
    if args.merge:
        rows = merged(args.out, rows, args)
    table = (
        f"Per-scene fit ({args.iterations} iterations per scale), each variant adding one change to the "
        "one above, on procedural scene sets "
        f"drawn with validation seeds (not the learning benchmark's), mean per set.\n\n"
        + markdown_table(rows, ["seed", "scenes", "method", *METRICS])
    )
    payload = {"machine": machine_info(), "args": vars(args), "rows": rows}
    save(args.out, args.md, payload, table)
    return payload


if __name__ == "__main__":
    main()
