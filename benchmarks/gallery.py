"""Pictures for the README: input slices, predicted depth and AIF for every stack in ../shared/data/real.

    python -m benchmarks.gallery [--max-size 384] [--checkpoint PATH]

Writes small JPEGs to ``docs/gallery/`` and the markdown table to ``docs/results/gallery.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks._common import REPO
from focalstack.data.align import align_stack
from focalstack.data.stack import FocalStack
from focalstack.inference.outputs import colorize_depth, to_uint8_rgb
from focalstack.inference.predict import load_predictor, predict_full
from focalstack.utils.io import atomic_path

REAL = REPO.parent / "shared" / "data" / "real"
THUMB = 320


def _jpeg(path: Path, rgb: np.ndarray) -> None:
    h, w = rgb.shape[:2]
    f = THUMB / max(h, w)
    small = cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    with atomic_path(path) as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-size", type=int, default=384)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "gallery")
    parser.add_argument("--md", type=Path, default=REPO / "docs" / "results" / "gallery.md")
    args = parser.parse_args()
    model = load_predictor(args.checkpoint)
    lines = [
        "Shipped model, slices aligned, longer side <= "
        f"{args.max_size} px. Depth: near = warm; metres when the focus distances are known, else slice units.",
        "",
        "| scene | first / last slice | depth | AIF | notes |",
        "|---|---|---|---|---|",
    ]
    for folder in sorted(p for p in REAL.iterdir() if (p / "scene.json").is_file()):
        stack = FocalStack.load(folder)
        if max(stack.size) > args.max_size:
            stack = stack.resized(args.max_size / max(stack.size))
        stack = align_stack(stack).stack
        t0 = time.perf_counter()
        p = predict_full(stack, model=model)
        seconds = time.perf_counter() - t0
        name = folder.name
        ends = np.concatenate([to_uint8_rgb(stack.images[0]), to_uint8_rgb(stack.images[-1])], axis=1)
        _jpeg(args.out / f"{name}_input.jpg", ends)
        metric = p.depth_units == "m"
        _jpeg(
            args.out / f"{name}_depth.jpg",
            colorize_depth(p.depth.numpy(), label="m" if metric else "", inverse=metric),
        )
        _jpeg(args.out / f"{name}_aif.jpg", to_uint8_rgb(p.aif))
        rel = "docs/gallery"
        note = f"{stack.num_slices} slices, {p.depth_units}, {seconds:.1f} s"
        lines.append(
            f"| {name} | ![]({rel}/{name}_input.jpg) | ![]({rel}/{name}_depth.jpg) | ![]({rel}/{name}_aif.jpg) | {note} |"
        )
        print(f"{name}: {note}")
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.md.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}/ and {args.md}")


if __name__ == "__main__":
    main()
