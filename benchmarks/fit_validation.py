"""Fit variants on accuracy set A's *train* split: where the fit's defaults are weighed, not on the test split.

A variant is a name and a JSON object of changes to the default ``FitConfig``: its own fields (``margin``,
``psf``, ``init``, ...) or, for any other key, its ``LossConfig``'s (``benchmarks.fit_procedural.
fit_config``; JSON lists become tuples). The scenes are ``A_train[offset::stride]`` in name order (the
train split of ``benchmarks/splits/``, rendered by ``scripts/make_accuracy_data.py``). Each variant is
scored with the accuracy table's metrics, averaged over the scenes; the JSON keeps each scene's. Classical
DFF + focus stacking is scored too: the AIF target is relative to it.

    python -m benchmarks.fit_validation [--variant NAME JSON ...] [--from-truth] [--stride 7]
        [--offset 2] [--scenes NAME ...] [--iterations 30]

``--residual-blur`` compares the depth sweep's low-pass on each hypothesis's residual: none (the default
before session 17), the default std 1 px and 2 px.

``--from-truth`` also fits each variant from the true depth and AIF (a diagnostic: it reads ground truth)
and counts the scenes where the normal fit ends at a *lower* objective than that: there the objective,
not the start, keeps the fit from the truth.

Without ``--variant`` it runs the AIF-prior ablation: the default fit (the paper's AIF-vs-coarse-AIF term
only in a last AIF-only stage, ``FitConfig.aif_prior="after"``), the fit with the term throughout
(``"joint"``, whose pull towards the slices' residual blur biases depth) and the fit without it
(``aif_weight=0``). ``--steps`` compares step schedules instead: the default (the same steps at every
scale) and ``step_growth=2`` (``iterations * k**2`` steps at a scale k times smaller).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from benchmarks._common import REPO, machine_info, markdown_table, save
from benchmarks.accuracy import fit_predictor, scene_folders, score
from focalstack.data.stack import FocalStack
from focalstack.inference.baselines import dff_predict

DFF = "DFF + focus stacking"
FROM_TRUTH = "from the truth (reads GT)"
#: The ablation run without --variant.
DEFAULT_VARIANTS = {
    "fit (default: AIF prior after the depth)": {},
    "fit with the AIF prior throughout (the paper's)": {"aif_prior": "joint"},
    "fit without the AIF prior": {"aif_weight": 0.0},
}
#: The step-schedule comparison (--steps).
STEP_VARIANTS = {
    "fit (default: the same steps at every scale)": {},
    "fit with steps x k^2 at scale 1/k (step_growth 2)": {"step_growth": 2.0},
}
#: The sweep's residual low-pass (--residual-blur): the default (1 px) against none and 2 px.
RESIDUAL_VARIANTS = {
    "fit without the residual low-pass (the default before session 17)": {"sweep_residual_blur_px": 0.0},
    "fit (default: residuals low-passed, std 1 px)": {},
    "fit with residuals low-passed, std 2 px": {"sweep_residual_blur_px": 2.0},
}
COLUMNS = [
    "method",
    "scenes",
    "delta1",
    "absrel",
    "error_slices",
    "aif_psnr",
    "final_loss",
    "below_truth",
    "s_per_scene",
]


def parse_variant(name: str, spec: str) -> dict:
    """The changes of one ``--variant NAME JSON``, lists as tuples.

    Raises:
        ValueError: ``spec`` is not a JSON object.
    """
    try:
        changes = json.loads(spec)
    except json.JSONDecodeError as err:
        raise ValueError(f"--variant {name!r}: {spec!r} is not JSON ({err})") from None
    if not isinstance(changes, dict):
        raise ValueError(f"--variant {name!r}: changes must be a JSON object, got {spec!r}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}


def train_scenes(folder: Path, stride: int, offset: int, names: list[str] | None = None) -> list[FocalStack]:
    """The scenes ``folder[offset::stride]`` (scene folders in name order), or those named ``names``.

    Raises:
        SystemExit: the folder is missing, holds no scene, or lacks a named one.
    """
    folders = scene_folders(folder)
    if names:
        missing = sorted(set(names) - {p.name for p in folders})
        if missing:
            raise SystemExit(f"no scene {missing} in {folder}")
        scenes = [p for p in folders if p.name in names]
    else:
        scenes = folders[offset::stride]
    if not scenes:
        raise SystemExit(f"no scene in {folder}[{offset}::{stride}]")
    return [FocalStack.load(p) for p in scenes]


def fit_row(
    name: str, stacks: list[FocalStack], iterations: int, changes: dict, oracle: bool = False
) -> dict:
    """``score`` of one fit variant plus its final objective, mean and per scene."""
    losses: list[float] = []
    row = score(name, "A train", stacks, fit_predictor(iterations, oracle, changes, losses))
    for scene, loss in zip(row["per_scene"], losses):
        scene["final_loss"] = loss
    return {**row, "final_loss": statistics.fmean(losses), "changes": changes}


def scored_rows(
    stacks: list[FocalStack], variants: dict[str, dict], iterations: int, from_truth: bool
) -> list[dict]:
    """DFF, then each variant (followed by its fit from the truth with ``from_truth``)."""
    rows = [score(DFF, "A train", stacks, dff_predict)]
    for name, changes in variants.items():
        row = fit_row(name, stacks, iterations, changes)
        rows.append(row)
        if from_truth:
            truth = fit_row(f"{name}, {FROM_TRUTH}", stacks, iterations, changes, oracle=True)
            pairs = zip(row["per_scene"], truth["per_scene"])
            # Where the fit ends at a lower objective than the truth does, the objective, not the start,
            # is what keeps it from the truth.
            row["below_truth"] = f"{sum(a['final_loss'] < b['final_loss'] for a, b in pairs)} / {len(stacks)}"
            rows.append(truth)
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variant",
        nargs=2,
        action="append",
        metavar=("NAME", "JSON"),
        help="repeatable; default: the AIF-prior ablation",
    )
    parser.add_argument(
        "--from-truth",
        action="store_true",
        help="also fit each variant from the true depth and AIF (a diagnostic that reads ground truth)",
    )
    presets = parser.add_mutually_exclusive_group()
    presets.add_argument(
        "--steps", action="store_true", help="compare step schedules instead of the AIF-prior ablation"
    )
    presets.add_argument(
        "--residual-blur",
        action="store_true",
        help="compare the sweep's residual low-pass (0, 1, 2 px) instead of the AIF-prior ablation",
    )
    parser.add_argument("--data", type=Path, default=REPO / "data" / "accuracy" / "A_train")
    parser.add_argument("--stride", type=int, default=7)
    parser.add_argument("--offset", type=int, default=2)
    parser.add_argument(
        "--scenes", nargs="+", metavar="NAME", help="these scenes instead of [offset::stride]"
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=30,
        help="fit iterations (at full size; per scale for step_growth 0)",
    )
    parser.add_argument("--out", help="JSON (default bench_out/fit_validation[_steps|_residual].json)")
    parser.add_argument("--md", help="markdown (default docs/results/fit_validation[_steps|_residual].md)")
    args = parser.parse_args(argv)
    stem = "fit_validation" + ("_steps" if args.steps else "_residual" if args.residual_blur else "")
    args.out = args.out or str(REPO / "bench_out" / f"{stem}.json")
    args.md = args.md or str(REPO / "docs" / "results" / f"{stem}.md")
    if args.stride < 1 or args.offset < 0:
        parser.error("need --stride >= 1 and --offset >= 0")
    try:
        default = (
            STEP_VARIANTS if args.steps else RESIDUAL_VARIANTS if args.residual_blur else DEFAULT_VARIANTS
        )
        variants = {n: parse_variant(n, s) for n, s in args.variant} if args.variant else default
    except ValueError as err:
        parser.error(str(err))
    torch.set_num_threads(2)
    stacks = train_scenes(args.data, args.stride, args.offset, args.scenes)
    which = ", ".join(s.name for s in stacks) if args.scenes else f"[{args.offset}::{args.stride}]"
    rows = scored_rows(stacks, variants, args.iterations, args.from_truth)
    table = (
        f"Per-scene fit ({args.iterations} it{' at full size' if args.steps else '/scale'}) on accuracy "
        f"set {args.data.name.removesuffix('_train')}'s train split, scenes {which} ({len(stacks)}), "
        "mean per scene; AIF PSNR against the true AIF; "
        "final_loss: the objective at the fit's last step; below_truth: scenes where it is lower than "
        f"where the fit {FROM_TRUTH} ends.\n\n" + markdown_table(rows, COLUMNS)
    )
    payload = {"machine": machine_info(), "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
    save(args.out, args.md, payload, table)
    return payload


if __name__ == "__main__":
    main()
