"""Per-scene fitting (no network) on procedural scenes, against classical DFF, for several SSIM ranges.

A fit optimises depth and AIF of one stack through the renderer with the training losses, so it shows
what the self-supervised objective itself prefers. Procedural scenes carry realistic sensor noise; with
standard SSIM (``ssim_range`` 1) the noise rewards depths that put a slice exactly in focus. Scene sets
are drawn with seeds other than the learning benchmark's held-out seed (validation, not test), each
set scored by delta1, AbsRel and the error in slices, averaged over its scenes.

    python -m benchmarks.fit_procedural [--seeds 777 1001 1002] [--scenes 8 12 12] [--ranges 1 10]
"""

from __future__ import annotations

import argparse

import torch
from tqdm import tqdm

from benchmarks._common import REPO, machine_info, markdown_table, save
from benchmarks.train_procedural import METRICS, heldout_scenes, mean_metrics, scene_metrics
from focalstack.data.procedural import ProceduralConfig
from focalstack.inference.baselines import dff_depth
from focalstack.inference.fit import FitConfig, fit_scene
from focalstack.losses import LossConfig


def score_set(seed: int, n: int, ranges: list[float], iterations: int) -> list[dict]:
    """Mean metrics of DFF and of a fit per SSIM range on ``n`` scenes drawn with ``seed``."""
    scenes = heldout_scenes(n, ProceduralConfig(), seed=seed)
    methods = {"DFF (classical)": None, **{f"fit, ssim_range {r:g}": r for r in ranges}}
    out = []
    for name, r in methods.items():
        rows = []
        for stack in tqdm(scenes, desc=f"seed {seed}: {name}", leave=False):
            if r is None:
                depth = dff_depth(stack).float()
            else:
                cfg = FitConfig(iterations=iterations, loss=LossConfig(kernel_size=None, ssim_range=r))
                depth = fit_scene(stack, cfg, progress=False).depth_m
            rows.append(scene_metrics(depth, stack))
        out.append({"seed": seed, "scenes": n, "method": name, **mean_metrics(rows)})
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[777, 1001, 1002])
    parser.add_argument("--scenes", type=int, nargs="+", default=[8, 12, 12], help="scenes per seed")
    parser.add_argument("--ranges", type=float, nargs="+", default=[1.0, 10.0], help="SSIM ranges")
    parser.add_argument("--iterations", type=int, default=100, help="fit iterations per scale")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "bench_out" / "fit_procedural.json"))
    parser.add_argument("--md", default=str(REPO / "docs" / "results" / "fit_procedural.md"))
    args = parser.parse_args(argv)
    if len(args.scenes) != len(args.seeds):
        parser.error("--scenes needs one count per seed")
    torch.set_num_threads(args.threads)
    rows = [r for s, n in zip(args.seeds, args.scenes) for r in score_set(s, n, args.ranges, args.iterations)]
    table = (
        f"Per-scene fit ({args.iterations} iterations per scale, init DFF) on procedural scene sets "
        f"drawn with validation seeds (not the learning benchmark's), mean per set.\n\n"
        + markdown_table(rows, ["seed", "scenes", "method", *METRICS])
    )
    payload = {"machine": machine_info(), "args": vars(args), "rows": rows}
    save(args.out, args.md, payload, table)
    return payload


if __name__ == "__main__":
    main()
