"""Real stacks without ground truth: leave one slice out, predict from the rest, re-render it.

Runs ``focalstack.eval.holdout`` on every stack in ``../shared/data/real`` that has focus distances,
for the network, classical DFF + focus stacking, and the nearest remaining slice (all re-rendered
through the same lens; an unknown pixel pitch is replaced by one blur-scale factor fitted to the
remaining slices only). Slices are aligned first (focus breathing, hand shake).

    python -m benchmarks.holdout_real [--max-size 384] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from benchmarks._common import REPO, machine_info, save
from focalstack.eval.holdout import HoldoutConfig, holdout_eval, holdout_markdown
from focalstack.utils.io import atomic_path

REAL = REPO.parent / "shared" / "data" / "real"
GALLERY = REPO / "docs" / "gallery"
#: Height (pixels) of each panel of the figures.
PANEL = 200


def _panel(img: torch.Tensor, label: str) -> np.ndarray:
    rgb = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    h, w = rgb.shape[:2]
    rgb = np.ascontiguousarray(cv2.resize(rgb, (round(w * PANEL / h), PANEL), interpolation=cv2.INTER_AREA))
    cv2.putText(rgb, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(rgb, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return rgb


def write_figures(report: dict[str, Any], out: Path) -> list[str]:
    """One JPEG per scene: its middle held-out slice, real photo next to every method's re-rendering.

    Pops the (non-serialisable) renders from ``report``; returns markdown lines showing the figures.
    """
    lines = []
    for scene in report["scenes"]:
        rows = scene["slices"]
        row = rows[len(rows) // 2]
        renders = row.pop("renders")
        for r in rows:
            r.pop("renders", None)
        panels = [_panel(renders["real"], f"real slice {row['index']}")]
        for method, scores in row["methods"].items():
            panels.append(_panel(renders[method], f"{method} {scores['psnr']:.1f} dB"))
        path = out / f"holdout_{scene['scene']}.jpg"
        with atomic_path(path) as tmp:
            figure = cv2.cvtColor(np.concatenate(panels, axis=1), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(tmp), figure, [cv2.IMWRITE_JPEG_QUALITY, 85])
        lines.append(f"![{scene['scene']}](docs/gallery/{path.name})")
    return lines


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
    report = holdout_eval(REAL, cfg, keep_renders=True)
    figures = write_figures(report, GALLERY)
    note = (
        f"Held-out-slice PSNR / SSIM (dB / -) against the real photo, images downscaled to <= {args.max_size} px, "
        f"{'aligned' if cfg.align else 'not aligned'}; higher is better."
    )
    save(
        args.out,
        args.md,
        {"machine": machine_info(), "report": report},
        note
        + "\n\n"
        + holdout_markdown(report)
        + "\nThe middle held-out slice of each stack: the real photo, then each method's re-rendering of it "
        + "(from the other slices only).\n\n"
        + "\n".join(figures)
        + "\n",
    )


if __name__ == "__main__":
    main()
