"""Figures of typical successes and failures on accuracy set A (issue: "beat the paper").

For the first ``--scenes`` test scenes of A it predicts depth with classical DFF, the default per-scene
``fit``, the fit with the Gaussian PSF and without the semi-global sweep (an older default) and the
shipped model, ranks the scenes by the error (slices) of the best of them, and draws the two best and
two worst scenes: first slice, ground truth, every method, and the best method's error. All depth
maps of one scene share one colour scale (inverse depth, the ground truth's 2-98 % range; near =
warm); the error map is |1/d - 1/g| in slice spacings, 0 (black) to 1 (white).

    python -m benchmarks.accuracy_figures [--scenes 6] [--fit-iterations 30]

Writes JPEGs to ``docs/gallery/accuracy/`` (removing the figures of scenes it did not pick) and
``docs/results/accuracy_figures.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks._common import REPO
from benchmarks.accuracy import WINDOW_FIT, Predictor, fit_predictor, network
from focalstack.data.stack import FocalStack
from focalstack.eval.metrics import depth_metrics
from focalstack.inference.baselines import dff_predict
from focalstack.inference.outputs import COLORMAP, to_uint8_rgb
from focalstack.utils.io import atomic_path

LABEL_PX = 18


def methods(iterations: int) -> dict[str, Predictor]:
    return {
        "DFF": dff_predict,
        "fit": fit_predictor(iterations),
        "fit, Gaussian, window sweep": fit_predictor(iterations, changes=WINDOW_FIT),
        "shipped model": network(None),
    }


def _colour(depth: np.ndarray, lo_d: float, hi_d: float) -> np.ndarray:
    """Inverse depth mapped to the colour map between diopters ``lo_d`` (far) and ``hi_d`` (near)."""
    norm = ((1.0 / depth - lo_d) / (hi_d - lo_d)).clip(0, 1)
    return cv2.cvtColor(cv2.applyColorMap(np.round(norm * 255).astype(np.uint8), COLORMAP), cv2.COLOR_BGR2RGB)


def _labelled(tile: np.ndarray, text: str) -> np.ndarray:
    band = np.full((LABEL_PX, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(band, text, (3, LABEL_PX - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, tile], axis=0)


def scene_figure(stack: FocalStack, depths: dict[str, torch.Tensor], scores: dict[str, dict]) -> np.ndarray:
    """First slice, truth, every method's depth and the best method's error map, 4 tiles a row."""
    gt = stack.depth_m.float().numpy()
    lo_d, hi_d = np.percentile(1.0 / gt[gt > 0], [2, 98])
    spacing = float((1 / stack.focus_m.min() - 1 / stack.focus_m.max()) / (stack.num_slices - 1))
    tiles = [_labelled(to_uint8_rgb(stack.images[0]), "slice 1"), _labelled(_colour(gt, lo_d, hi_d), "truth")]
    for name, depth in depths.items():
        s = scores[name]
        text = f"{name}: {s['delta1']:.2f} / {s['error_slices']:.2f}"
        tiles.append(_labelled(_colour(depth.numpy(), lo_d, hi_d), text))
    best = min(scores, key=lambda k: scores[k]["error_slices"])
    err = np.abs(1.0 / depths[best].numpy() - 1.0 / gt) / spacing
    grey = np.round(err.clip(0, 1) * 255).astype(np.uint8)
    tiles.append(_labelled(np.repeat(grey[..., None], 3, axis=2), f"error of {best}"))
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % 4)
    return np.concatenate([np.concatenate(tiles[i : i + 4], axis=1) for i in range(0, len(tiles), 4)], axis=0)


def prune_figures(folder: Path, keep: set[str]) -> list[str]:
    """Remove the JPEGs in ``folder`` not named in ``keep`` (figures of scenes this run did not pick,
    which the markdown no longer shows and which would go stale); returns the removed names."""
    removed = sorted(p.name for p in folder.glob("*.jpg") if p.name not in keep)
    for name in removed:
        (folder / name).unlink()
    return removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "accuracy" / "A_test")
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--fit-iterations", type=int, default=30)
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "docs" / "gallery" / "accuracy",
        help="a folder of its own: JPEGs in it that this run does not write are removed",
    )
    parser.add_argument("--md", type=Path, default=REPO / "docs" / "results" / "accuracy_figures.md")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data} is missing: run `python scripts/make_accuracy_data.py` first")
    torch.set_num_threads(2)
    predictors = methods(args.fit_iterations)
    results = []
    for folder in sorted(p for p in args.data.iterdir() if (p / "scene.json").is_file())[: args.scenes]:
        stack = FocalStack.load(folder)
        depths = {name: predict(stack)[0].float() for name, predict in predictors.items()}
        scores = {n: depth_metrics(d, stack.depth_m, focus_m=stack.focus_m) for n, d in depths.items()}
        best = min(scores.values(), key=lambda s: s["error_slices"])["error_slices"]
        results.append((best, stack, depths, scores))
        print(f"{stack.name}: best error {best:.3f} slices", flush=True)
    results.sort(key=lambda r: r[0])
    n = min(2, len(results) // 2)
    picked = [("success", r) for r in results[:n]] + [("failure", r) for r in results[len(results) - n :]]
    args.out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"Accuracy set A, first {len(results)} test scenes ranked by the best method's error; the two best "
        "(success) and two worst (failure). Labels: method: delta1 / error in slices. Depth colours: "
        "inverse depth, one scale per scene (truth's 2-98 %), near = warm; error: 0 (black) to 1 slice "
        f"spacing (white). `python -m benchmarks.accuracy_figures --scenes {args.scenes}`.",
        "",
    ]
    for kind, (_, stack, depths, scores) in picked:
        path = args.out / f"{stack.name}.jpg"
        figure = cv2.cvtColor(scene_figure(stack, depths, scores), cv2.COLOR_RGB2BGR)
        with atomic_path(path) as tmp:
            cv2.imwrite(str(tmp), figure, [cv2.IMWRITE_JPEG_QUALITY, 88])
        rel = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        lines += [f"**{kind}: {stack.name}**", "", f"![]({rel})", ""]
    prune_figures(args.out, {f"{r[1].name}.jpg" for _, r in picked})
    args.md.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.md) as tmp:
        tmp.write_text("\n".join(lines))
    print(f"wrote {args.out}/ and {args.md}")


if __name__ == "__main__":
    main()
