"""Inference speed: ms per stack and peak memory for 5 x 256^2 and 5 x 1024^2 (tiled) stacks.

Each configuration runs in a fresh subprocess so peak memory (ru_maxrss) is its own. CPU runs use 2
threads; CUDA runs are added when a GPU is present. Target: <= 150 ms for 5 x 256^2 on 2 CPU threads.

    python -m benchmarks.predict [--checkpoint PATH] [--out bench_out/predict.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch

from benchmarks._common import REPO, machine_info, markdown_table, max_rss_mb, save, time_it

CONFIGS = [(5, 256), (5, 1024)]


def measure(slices: int, size: int, device: str, checkpoint: str | None, reps: int) -> dict:
    """Time ``predict`` on a random stack; runs inside the child process."""
    from focalstack.data.stack import FocalStack
    from focalstack.inference.predict import load_predictor, predict

    torch.set_num_threads(2)
    base = max_rss_mb()
    stack = FocalStack(
        images=torch.rand(slices, 3, size, size),
        focus_m=torch.linspace(0.5, 2.0, slices, dtype=torch.float64),
        camera=None,
        depth_m=None,
        aif=None,
        name="bench",
        meta={},
    )
    model = load_predictor(checkpoint, device)
    with torch.inference_mode():
        ms = time_it(lambda: predict(stack, model=model, device=device), reps=reps, sync=device == "cuda")
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else max_rss_mb() - base
    tiles = 1 if size <= 512 else "tiled 512/64"
    return {"stack": f"{slices} x {size}^2", "device": device, "tiling": tiles, "ms": ms, "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--out", default=str(REPO / "bench_out" / "predict.json"))
    parser.add_argument("--md", default=str(REPO / "docs" / "results" / "predict.md"))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--child", nargs=3, metavar=("S", "SIZE", "DEVICE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        s, size, dev = args.child
        print(json.dumps(measure(int(s), int(size), dev, args.checkpoint, args.reps)))
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for dev in devices:
        for s, size in CONFIGS:
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.predict",
                "--child",
                str(s),
                str(size),
                dev,
                "--reps",
                str(args.reps),
            ]
            if args.checkpoint:
                cmd += ["--checkpoint", args.checkpoint]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    target = next(r for r in rows if r["device"] == "cpu" and r["stack"] == "5 x 256^2")
    table = markdown_table(rows, ["stack", "device", "tiling", "ms", "peak_mb"])
    table += f"\n\nTarget 5 x 256^2 on 2 CPU threads <= 150 ms: {'met' if target['ms'] <= 150 else 'MISSED'}"
    save(args.out, args.md, {"machine": machine_info(), "rows": rows}, table)


if __name__ == "__main__":
    main()
