"""Fine-tune the shipped model self-supervised on accuracy set A's train stacks, score on A test.

For a CUDA machine (see ``scripts/gpu_ablations.sh``): the tta recipe of ``benchmarks.accuracy`` with
the 7 x 7 window renderer and with the untruncated ``levels`` renderer (the tta preset's own), same
minutes each, both runs at once on the GPU; then the shipped and both fine-tuned models are scored on A test.
Training reads stack folders only (``--train`` may hold copies without ``aif.png`` / ``depth.npy``).

    PYTHONPATH=. python scripts/gpu_finetune_a.py --train DIR --test DIR --minutes 4 --out OUT.md
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from pathlib import Path

from benchmarks._common import markdown_table
from benchmarks.accuracy import _load, finetune, network, score

VARIANTS = {
    "7x7 window (render_mode=gather)": {"render_mode": "gather"},
    "untruncated (render_mode=levels)": {"render_mode": "levels"},
}


def _train(args: tuple[str, Path, Path, float]) -> str:
    name, data, out, minutes = args
    return str(finetune("default", data, out / name.split()[0], minutes, 100_000, loss=VARIANTS[name]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--runs", type=Path, default=Path("/tmp/ft_a"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    jobs = [(name, args.train, args.runs, args.minutes) for name in VARIANTS]
    with mp.get_context("spawn").Pool(len(jobs)) as pool:
        checkpoints = dict(zip(VARIANTS, pool.map(_train, jobs)))
    stacks = [_load(p) for p in sorted(args.test.iterdir()) if (p / "scene.json").is_file()]
    rows = [score("shipped model", "A", stacks, network(None))]
    for name, ckpt in checkpoints.items():
        rows.append(score(f"fine-tuned on A train {args.minutes:g} min, {name}", "A", stacks, network(ckpt)))
    cols = ["data", "method", "scenes", "delta1", "absrel", "error_slices", "aif_psnr"]
    args.out.write_text(markdown_table(rows, cols) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
