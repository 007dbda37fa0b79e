"""The shipped weights on the learning benchmark's held-out procedural scenes (no training here).

Same 32 scenes (fixed seed), metrics and baselines as ``benchmarks.train_procedural``; compares the
shipped model with its own untrained initialisation (same architecture, seed 0), a constant depth and
classical DFF.

    python -m benchmarks.shipped_procedural [--checkpoint PATH]
"""

from __future__ import annotations

import argparse

import torch

from benchmarks._common import REPO, machine_info, markdown_table, save
from benchmarks.train_procedural import METRICS, evaluate, heldout_scenes
from focalstack.data.procedural import ProceduralConfig
from focalstack.models import build_model
from focalstack.train.checkpoint import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--scenes", type=int, default=32)
    parser.add_argument("--out", default=str(REPO / "bench_out" / "shipped_procedural.json"))
    parser.add_argument("--md", default=str(REPO / "docs" / "results" / "shipped_procedural.md"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, cfg = load_model(args.checkpoint)
    torch.manual_seed(cfg.seed)
    untrained = build_model(cfg.model)
    scenes = heldout_scenes(args.scenes, ProceduralConfig())
    name = f"{cfg.model.name} w{cfg.model.width}"
    results = evaluate({f"{name} shipped": model, f"{name} untrained": untrained}, scenes)
    rows = [{"method": k, **v} for k, v in results.items()]
    table = (
        f"Shipped weights ({args.checkpoint}) on the {args.scenes} held-out procedural scenes of the learning benchmark.\n\n"
        + markdown_table(rows, ["method", *METRICS])
    )
    save(args.out, args.md, {"machine": machine_info(), "results": results}, table)


if __name__ == "__main__":
    main()
