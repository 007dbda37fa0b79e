"""How much of each scene lies outside the fit's working range, and whether the depth sweep notices.

The fit bounds depth to the focus range in diopters widened by ``margin`` slice spacings
(``focalstack.data.normalize.working_range_m``) and widens it, one spacing at a time, where its depth
sweep puts more than ``FitConfig.pinned_fraction`` of the pixels at an end of the range
(``FitConfig.widen_margin``). Per scene of a set of accuracy scenes this reports:

- ``out_m{1,2,3}``: the share of valid true-depth pixels outside the range with that margin;
- ``floor_m{1,2,3}``: the error (slices) of the truth clamped to that range, the least error any
  estimate bounded to it can have;
- with ``--sweep``: ``pinned``, the share of the sweep's pixels at an end of the one-spacing range
  (:func:`focalstack.inference.fit.pinned_fraction`), and ``fit_margin``, the margin the default fit's
  sweep ends with.

The table lists the scenes with any true depth outside the one-spacing range (or any pinned pixel) and
the mean over all scenes. It reads ground truth, as an analysis.

    python -m benchmarks.range_coverage [--sets A_test A_train] [--sweep]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics

import torch

from benchmarks._common import REPO, machine_info, markdown_table, save
from benchmarks.accuracy import scene_folders
from benchmarks.fit_procedural import fit_config
from focalstack.data.normalize import working_range_m
from focalstack.data.stack import FocalStack
from focalstack.eval.metrics import depth_metrics, valid_mask
from focalstack.inference.fit import FitConfig, fit_range_m, initial_estimate, pinned_fraction

MARGINS = (1, 2, 3)
COLUMNS = ["set", "scene", *(f"{k}_m{m}" for k in ("out", "floor") for m in MARGINS), "pinned", "fit_margin"]


def coverage(stack: FocalStack) -> dict[str, float]:
    """``out_m*`` and ``floor_m*`` of one scene with ground truth (see the module docstring)."""
    gt = stack.depth_m.float()
    valid = valid_mask(gt[None, None])[0, 0]
    focus = torch.as_tensor(stack.focus_m, dtype=torch.float32)
    row = {}
    for m in MARGINS:
        near, far = working_range_m(focus[None], float(m))[0].tolist()
        row[f"out_m{m}"] = ((gt[valid] < near) | (gt[valid] > far)).float().mean().item()
        clamped = torch.where(valid, gt.clamp(near, far), gt)
        row[f"floor_m{m}"] = depth_metrics(clamped, gt, focus_m=stack.focus_m)["error_slices"]
    return row


def sweep_range(stack: FocalStack, cfg: FitConfig) -> dict[str, float]:
    """``pinned`` (the sweep in ``cfg.margin``'s range, not widened) and ``fit_margin`` (with widening)."""
    # the fit widens its range on the sweep's depth before it retracts the sweep's halos
    fixed = dataclasses.replace(cfg, widen_margin=0, retract_halos=False)
    depth, _ = initial_estimate(stack, fixed)
    focus = torch.as_tensor(stack.focus_m, dtype=torch.float32)
    pinned = pinned_fraction(depth, working_range_m(focus[None], cfg.margin), cfg.loss.sweep_candidates)
    if pinned <= cfg.pinned_fraction:
        return {"pinned": pinned, "fit_margin": cfg.margin}
    near = fit_range_m(stack, cfg)[0]
    # the margin the sweep widened to: the one whose working range has that near end
    widened = [cfg.margin + k for k in range(1, cfg.widen_margin + 1)]
    ends = [working_range_m(focus[None], m)[0, 0].item() for m in widened]
    return {"pinned": pinned, "fit_margin": next(m for m, e in zip(widened, ends) if math.isclose(e, near))}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["A_test", "A_train"], help="folders in --data")
    parser.add_argument("--data", default=str(REPO / "data" / "accuracy"))
    parser.add_argument("--sweep", action="store_true", help="also run the fit's depth sweep (~20 s/scene)")
    parser.add_argument("--out", default=str(REPO / "bench_out" / "range_coverage.json"))
    parser.add_argument("--md", default=str(REPO / "docs" / "results" / "range_coverage.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    cfg, rows, listed = fit_config(FitConfig().iterations, {}), [], []
    for name in args.sets:
        scenes = []
        for folder in scene_folders(REPO / args.data / name):
            stack = FocalStack.load(folder)
            row = {"set": name, "scene": stack.name, **coverage(stack)}
            row.update(sweep_range(stack, cfg) if args.sweep else {"pinned": None, "fit_margin": None})
            scenes.append(row)
            if row["out_m1"] > 0 or (row["pinned"] or 0) > 0:
                listed.append(row)
        keys = [c for c in COLUMNS[2:] if scenes[0][c] is not None]
        mean = {k: statistics.fmean(r[k] for r in scenes) for k in keys}
        listed.append({"set": name, "scene": f"mean of {len(scenes)}", **mean})
        rows.extend(scenes)
    table = (
        "Share of true depth outside the working range with margin 1, 2, 3 slice spacings (out_m*), error "
        "(slices) of the truth clamped to it (floor_m*), share of the depth sweep's pixels at an end of "
        "the one-spacing range (pinned) and the margin the default fit uses (fit_margin); scenes with any "
        "depth outside the one-spacing range, and each set's mean.\n\n" + markdown_table(listed, COLUMNS)
    )
    payload = {"machine": machine_info(), "args": vars(args), "rows": rows}
    save(args.out, args.md, payload, table)
    return payload


if __name__ == "__main__":
    main()
