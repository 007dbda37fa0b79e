"""Where sensor noise costs the fit on accuracy set A: the same train scenes with and without noise.

For each scene it scores, on A (with sensor noise) and A0 (rendered the same way without it), the fit's
start (the depth sweep, ``focalstack.inference.fit.initial_estimate``) and the default fit, and splits
the fit's error by texture: the least-textured quarter of the pixels (by the true AIF's gradient
magnitude, smoothed over 3 px) and the rest. ``signed`` is the median of (fitted - true) inverse depth
in slice spacings there: negative = too far. Train scenes only; it reads ground truth, as an analysis.

    python -m benchmarks.noise_analysis [--scenes dfd_indoor_023 dfd_indoor_068] [--iterations 30]
"""

from __future__ import annotations

import argparse

import kornia
import torch

from benchmarks._common import REPO, machine_info, markdown_table, save
from benchmarks.accuracy import scene_folders
from benchmarks.fit_procedural import fit_config
from focalstack.data.stack import FocalStack
from focalstack.eval.metrics import depth_metrics, mean_diopter_spacing, valid_mask
from focalstack.inference.fit import fit_scene, initial_estimate

COLUMNS = ["scene", "set", "start_slices", "fit_slices", "flat_share", "flat_signed", "rest_signed"]


def flat_quarter(aif: torch.Tensor) -> torch.Tensor:
    """(H, W) mask of the least-textured quarter of the pixels of a (3, H, W) image."""
    grad = kornia.filters.spatial_gradient(aif.mean(0)[None, None]).norm(dim=2)
    texture = kornia.filters.gaussian_blur2d(grad, (19, 19), (3.0, 3.0))[0, 0]
    return texture <= texture.flatten().quantile(0.25)


def signed_slices(depth: torch.Tensor, stack: FocalStack) -> torch.Tensor:
    """(H, W) fitted minus true inverse depth in slice spacings (positive = too near)."""
    return (1 / depth - 1 / stack.depth_m.clamp_min(1e-6)) / mean_diopter_spacing(stack.focus_m)


def scene_row(stack: FocalStack, name: str, iterations: int) -> dict:
    """Start and fit error (slices) of one stack, and the fit's error in its least-textured quarter."""
    cfg = fit_config(iterations, {})
    start, _ = initial_estimate(stack, cfg)
    depth = fit_scene(stack, cfg, progress=False).depth_m
    truth = stack.depth_m
    valid = valid_mask(truth)
    signed = signed_slices(depth, stack)
    flat = flat_quarter(stack.aif) & valid
    rest = ~flat & valid
    return {
        "scene": stack.name,
        "set": name,
        "start_slices": depth_metrics(start, truth, focus_m=stack.focus_m)["error_slices"],
        "fit_slices": depth_metrics(depth, truth, focus_m=stack.focus_m)["error_slices"],
        "flat_share": float(signed[flat].abs().sum() / signed[valid].abs().sum()),
        "flat_signed": float(signed[flat].median()),
        "rest_signed": float(signed[rest].median()),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=["dfd_indoor_023", "dfd_indoor_068"])
    parser.add_argument("--data", default=str(REPO / "data" / "accuracy"))
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--out", default=str(REPO / "bench_out" / "noise_analysis.json"))
    parser.add_argument("--md", default=str(REPO / "docs" / "results" / "noise_analysis.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    rows = []
    for scene in args.scenes:
        for name in ("A", "A0"):
            folders = {p.name: p for p in scene_folders(REPO / args.data / f"{name}_train")}
            if scene not in folders:
                parser.error(f"{scene} is not in {name}_train")
            rows.append(scene_row(FocalStack.load(folders[scene]), name, args.iterations))
    table = (
        f"Start (depth sweep) and default fit ({args.iterations} it/scale) on train scenes of A (sensor "
        "noise) and A0 (none), error in slices; flat_share: the part of the fit's error in the "
        "least-textured quarter of the pixels; flat_signed / rest_signed: median signed error (slices, "
        "negative = too far) there and elsewhere.\n\n" + markdown_table(rows, COLUMNS)
    )
    payload = {"machine": machine_info(), "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
    save(args.out, args.md, payload, table)
    return payload


if __name__ == "__main__":
    main()
