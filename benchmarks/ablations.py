"""Ablations of the training recipe at a fixed CPU budget (issue: "show by ablation what limits it").

Every variant is the shipped recipe (``--preset shipped``: slice-attention DAIF-Net, width 8, 96^2
crops, procedural scenes, the paper's losses plus the focus prior) with one change, trained for the
same number of minutes from the same seed, then scored without ground truth ever entering training:

- ``procedural``: the learning benchmark's 32 held-out procedural scenes (5 slices; the slice-count
  variants are scored on scenes with their own slice count),
- ``A``: the first ``--a-scenes`` test scenes of accuracy set A (disc PSF, occlusion, noise) when
  ``data/accuracy`` exists (``scripts/make_accuracy_data.py``),
- ``B``: ``../shared/data/lightfield/antinous_stack`` (error in slices).

Variants: renderer in training (gather / scatter, both with the 7 x 7 window / ``levels``: untruncated
Gaussian blur, so blur beyond the window still has a gradient), coarse AIF (hard / soft), focus input (normalised
inverse depth / raw metres as the paper feeds it: ``daifnet-attn-metres`` / none:
``daifnet-attn-nofocus``), slices per stack (2, 3, 5, 10) and network width
(4, 8, 16). Short budgets measure what a recipe reaches early, not its end point; the table says so.

    python -m benchmarks.ablations [--minutes 3] [--only NAME ...] [--jobs 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import REPO, machine_info, markdown_table, save
from benchmarks.train_procedural import EVAL_SEED, evaluate, heldout_scenes
from focalstack.data.procedural import ProceduralConfig
from focalstack.data.stack import FocalStack
from focalstack.eval.metrics import depth_metrics
from focalstack.inference.predict import predict_full
from focalstack.train.checkpoint import load_model
from focalstack.train.presets import get_preset
from focalstack.train.trainer import Trainer

SHARED = REPO.parent / "shared" / "data"
METRICS = ("delta1", "absrel", "error_slices")

#: name -> (axis, overrides applied to the shipped preset: "section.field" -> value)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "base": ("-", {}),
    "scatter": ("renderer in training", {"loss.render_mode": "scatter"}),
    "untruncated": ("renderer in training", {"loss.render_mode": "levels"}),
    "soft-coarse-aif": ("coarse AIF", {"loss.coarse_aif": "soft"}),
    "raw-focus-metres": ("focus input", {"model.name": "daifnet-attn-metres"}),
    "no-focus-input": ("focus input", {"model.name": "daifnet-attn-nofocus"}),
    "slices-2": ("slices", {"data.num_slices": 2, "data.min_slices": 2}),
    "slices-3": ("slices", {"data.num_slices": 3, "data.min_slices": 3}),
    "slices-10": ("slices", {"data.num_slices": 10, "data.min_slices": 10}),
    "width-4": ("width", {"model.width": 4}),
    "width-16": ("width", {"model.width": 16}),
}


def variant_config(name: str, out: Path, minutes: float):
    """The shipped preset with the variant's overrides, a time budget and a matching procedural set."""
    cfg = get_preset("shipped")
    for key, value in VARIANTS[name][1].items():
        section, field = key.split(".")
        setattr(getattr(cfg, section), field, value)
    s = cfg.data.num_slices
    if s != 5:  # scenes must have at least as many slices as drawn
        cfg.data.procedural = dataclasses.replace(cfg.data.procedural, num_slices=(s, s))
    cfg.out, cfg.time_budget_min, cfg.threads = str(out), minutes, 1
    cfg.data.num_workers, cfg.data.val_scenes = 1, 0
    cfg.log = dataclasses.replace(cfg.log, val_every=0, image_every=0, tensorboard=False, progress=False)
    return cfg


def train_variant(name: str, out: Path, minutes: float) -> dict[str, Any]:
    """Train one variant (the cosine annealed to the time budget); returns the trainer summary."""
    cfg = variant_config(name, out, minutes)
    cfg.optim.anneal_to_budget, cfg.max_steps = True, 10**6
    trainer = Trainer(cfg)
    try:
        summary = trainer.fit()
    finally:
        trainer.close()
    return {k: summary[k] for k in ("steps", "skipped_steps", "it_per_s", "elapsed_s")}


@torch.no_grad()
def score_variant(name: str, checkpoint: Path, a_scenes: int, a_test: Path) -> dict[str, dict[str, float]]:
    """Mean metrics of one trained variant on procedural, A (if present) and B."""
    model, cfg = load_model(str(checkpoint))
    s = cfg.data.num_slices
    proc = ProceduralConfig() if s == 5 else ProceduralConfig(num_slices=(s, s))
    out = {"procedural": evaluate({name: model}, heldout_scenes(32, proc), baselines=False)[name]}
    sets = {"A": sorted(a_test.glob("*/scene.json"))[:a_scenes]}
    antinous = SHARED / "lightfield" / "antinous_stack" / "scene.json"
    sets["B"] = [antinous] if antinous.is_file() else []
    for key, files in sets.items():
        rows = []
        for f in files:
            stack = FocalStack.load(f.parent)
            if stack.num_slices > s:  # the model sees (at most) the slice count it was trained with
                keep = torch.linspace(0, stack.num_slices - 1, s).round().long().unique()
                stack = dataclasses.replace(stack, images=stack.images[keep], focus_m=stack.focus_m[keep])
            depth = predict_full(stack, model=model).depth
            rows.append(depth_metrics(depth, stack.depth_m, focus_m=stack.focus_m))
        if rows:
            out[key] = {k: sum(r[k] for r in rows) / len(rows) for k in METRICS}
    return out


def run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    run = Path(args.runs) / name
    result_file = run / "ablation.json"
    if args.reuse and result_file.is_file():
        return json.loads(result_file.read_text())
    torch.manual_seed(0)
    training = train_variant(name, run, args.minutes)
    scores = score_variant(name, run / "last.pt", args.a_scenes, Path(args.a_test))
    result = {"variant": name, "axis": VARIANTS[name][0], "training": training, "scores": scores}
    result_file.write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget per variant")
    parser.add_argument("--only", nargs="+", default=None, choices=sorted(VARIANTS))
    parser.add_argument("--jobs", type=int, default=2, help="variants trained at once (one thread each)")
    parser.add_argument("--a-scenes", type=int, default=5, help="accuracy-set-A test scenes scored")
    parser.add_argument(
        "--a-test", default=str(REPO / "data" / "accuracy" / "A_test"), help="set A test scenes"
    )
    parser.add_argument("--runs", default=str(REPO / "bench_out" / "ablations"))
    parser.add_argument("--reuse", action="store_true", help="reuse finished variants")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(REPO / "bench_out" / "ablations.json"))
    parser.add_argument("--md", default=str(REPO / "docs" / "results" / "ablations.md"))
    args = parser.parse_args(argv)
    if args.child:
        run_one(args.child, args)
        return
    names = args.only or list(VARIANTS)
    Path(args.runs).mkdir(parents=True, exist_ok=True)
    start, pending, running = time.monotonic(), list(names), []
    # Each variant runs in its own process (one training thread + one loader worker), ``--jobs`` at once.
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            cmd = [sys.executable, "-m", "benchmarks.ablations", "--child", name, *_child_args(args)]
            log = open(Path(args.runs) / f"{name}.log", "w")  # noqa: SIM115 - closed when the child ends
            running.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO), log))
            print(f"started {name}", flush=True)
        time.sleep(2)
        for item in [r for r in running if r[1].poll() is not None]:
            running.remove(item)
            item[2].close()
            status = "done" if item[1].returncode == 0 else f"FAILED (see {args.runs}/{item[0]}.log)"
            print(f"{item[0]}: {status} after {(time.monotonic() - start) / 60:.1f} min", flush=True)
    results = []
    for name in names:
        f = Path(args.runs) / name / "ablation.json"
        if f.is_file():
            results.append(json.loads(f.read_text()))
    report(args, results)


def _child_args(args: argparse.Namespace) -> list[str]:
    return [
        "--minutes",
        str(args.minutes),
        "--a-scenes",
        str(args.a_scenes),
        "--a-test",
        args.a_test,
        "--runs",
        args.runs,
        *(["--reuse"] if args.reuse else []),
    ]


def report(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    rows = []
    for r in results:
        row: dict[str, Any] = {"axis": r["axis"], "variant": r["variant"], "steps": r["training"]["steps"]}
        for data, scores in r["scores"].items():
            for m in METRICS if data != "B" else ("error_slices",):
                row[f"{data} {m}"] = scores[m]
        rows.append(row)
    where = (
        f"on {torch.cuda.get_device_name()} ({args.jobs} variants sharing it)"
        if torch.cuda.is_available()
        else f"on one CPU thread ({args.jobs} variants at a time, {os.cpu_count()} cores)"
    )
    columns = ["axis", "variant", "steps"] + [c for c in rows[0] if c not in ("axis", "variant", "steps")]
    table = "\n".join(
        [
            f"Shipped recipe with one change each, {args.minutes:g} min of training per variant {where}, "
            f"seed 0; procedural = 32 "
            f"held-out scenes (seed {EVAL_SEED}), A = first {args.a_scenes} scenes of accuracy set A, B = "
            "antinous. Slice-count variants train and test with that many slices (procedural scenes drawn "
            "with it; A and B subsampled evenly when they have more), so their error in slices is in units "
            "of their own, wider spacing. Short budgets show what a recipe reaches early, not where it ends.",
            "",
            markdown_table(rows, columns),
        ]
    )
    payload = {
        "machine": {**machine_info(), "loadavg": os.getloadavg()},
        "args": vars(args),
        "results": results,
    }
    save(args.out, args.md, payload, table)


if __name__ == "__main__":
    main()
