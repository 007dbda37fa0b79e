"""Real stacks without ground truth: leave one slice out, predict from the rest, re-render it.

Runs ``focalstack.eval.holdout`` on every stack in ``../shared/data/real`` that has focus distances,
for the network, classical DFF + focus stacking, and the nearest remaining slice (all re-rendered
through the same lens; an unknown pixel pitch is replaced by one blur-scale factor fitted to the
remaining slices only). Slices are aligned first (focus breathing, hand shake).

    python -m benchmarks.holdout_real [--max-size 384] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse

from benchmarks._common import REPO, machine_info, save
from focalstack.eval.holdout import HoldoutConfig, holdout_eval, holdout_markdown

REAL = REPO.parent / "shared" / "data" / "real"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-size", type=int, default=384)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--methods", nargs="+", default=["network", "dff", "nearest"])
    parser.add_argument("--no-align", action="store_true")
    parser.add_argument("--out", default=str(REPO / "bench_out" / "holdout.json"))
    parser.add_argument("--md", default=str(REPO / "docs" / "results" / "holdout.md"))
    args = parser.parse_args()
    if not REAL.is_dir():
        raise SystemExit(f"{REAL} not found")
    cfg = HoldoutConfig(
        methods=tuple(args.methods),
        max_size=args.max_size,
        checkpoint=args.checkpoint,
        align=not args.no_align,
    )
    report = holdout_eval(REAL, cfg)
    note = (
        f"Held-out-slice PSNR / SSIM (dB / -) against the real photo, images downscaled to <= {args.max_size} px, "
        f"{'aligned' if cfg.align else 'not aligned'}; higher is better."
    )
    save(
        args.out,
        args.md,
        {"machine": machine_info(), "report": report},
        note + "\n\n" + holdout_markdown(report),
    )


if __name__ == "__main__":
    main()
