"""The layered renderer's fit on a CUDA machine: time and score three fits per scene.

- ``default``: the default fit (per-pixel gather renderer, sweep start);
- ``layered``: the fit with ``render_mode="layered"`` from the same sweep start;
- ``hybrid``: the layered fit started from the default fit's depth and AIF (same working range), which
  is ``FitConfig(refine="layered")``; ``--hybrid-scales`` runs it with other scales too (``hybrid(2, 1)``).

Scenes: every folder under each ``--sets`` path (a scene folder itself is taken as one scene). Writes one
JSON line per scene and fit to ``--out`` as it goes (so a run cut short keeps what it did) and prints the
means. Stops starting new scenes after ``--budget`` seconds. Usage (repo root, on the GPU machine, after
``source scripts/gpu_env.sh``): ``python3 scripts/gpu_layered.py --sets DIR [DIR ...] --out FILE``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from benchmarks.fit_procedural import fit_config
from focalstack.data.normalize import working_range_m
from focalstack.data.stack import FocalStack
from focalstack.eval.metrics import aif_metrics, depth_metrics
from focalstack.inference.fit import FitConfig, fit_scene

INV255 = torch.tensor(1.0 / 255.0, dtype=torch.float32)
KEYS = ("delta1", "absrel", "error_slices", "aif_psnr")


def scenes(paths: list[Path]) -> list[FocalStack]:
    """The stacks of scene folders, folders of them, or ``--pack`` files (for a machine without OpenCV)."""
    out = []
    for p in paths:
        if p.suffix == ".pt":
            out += [unpacked(d) for d in torch.load(p, weights_only=False)]
        elif (p / "scene.json").is_file():
            out.append(FocalStack.load(p))
        else:
            out += [FocalStack.load(q) for q in sorted(p.iterdir()) if (q / "scene.json").is_file()]
    return out


def packed(stack: FocalStack) -> dict:
    """``stack`` with 8-bit images as uint8 where that is exact (they were read as value * float32(1/255))."""

    def u8(x: torch.Tensor | None) -> torch.Tensor | None:
        q = None if x is None else (x * 255).round().to(torch.uint8)
        return q if q is not None and torch.equal(q.float() * INV255, x) else x

    fields = {f.name: getattr(stack, f.name) for f in dataclasses.fields(stack)}
    return {**fields, "images": u8(stack.images), "aif": u8(stack.aif)}


def unpacked(d: dict) -> FocalStack:
    f = lambda x: x.float() * INV255 if x is not None and x.dtype == torch.uint8 else x  # noqa: E731
    return FocalStack(**{**d, "images": f(d["images"]), "aif": f(d["aif"])})


def widened(cfg: FitConfig, stack: FocalStack, depth_range_m: tuple[float, float]) -> FitConfig:
    """``cfg`` with the margin whose working range is ``depth_range_m`` (the default fit's, maybe widened)."""
    focus = stack.focus_m.float()[None]
    for extra in range(cfg.widen_margin + 1):
        rng = working_range_m(focus, cfg.margin + extra)[0].tolist()
        if all(abs(a - b) <= 1e-4 * b for a, b in zip(rng, depth_range_m)):
            return dataclasses.replace(cfg, margin=cfg.margin + extra)
    raise RuntimeError(f"no margin gives the range {depth_range_m}")


def timed(fn, device: str):
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    r = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return r, time.perf_counter() - t0


def row(stack: FocalStack, r, seconds: float, fit: str) -> dict:
    m = depth_metrics(r.depth_m, stack.depth_m, focus_m=stack.focus_m)
    m.update(aif_metrics(r.aif, stack.aif) if stack.aif is not None else {})
    return {"scene": stack.name, "fit": fit, "seconds": seconds, **{k: m[k] for k in KEYS if k in m}}


def fits(stack: FocalStack, gather: FitConfig, layered: FitConfig, args: argparse.Namespace) -> dict:
    """fit name -> (FitResult, seconds) for the fits asked for."""

    def fit(cfg: FitConfig, **kw):
        return fit_scene(stack, cfg, progress=False, device=args.device, **kw)

    r0, s0 = timed(lambda: fit(gather), args.device)
    done = {"default": (r0, s0)}
    if "layered" in args.fits:
        done["layered"] = timed(lambda: fit(layered), args.device)
    if "hybrid" in args.fits:
        for scales in args.hybrid_scales:
            cfg = dataclasses.replace(widened(layered, stack, r0.depth_range_m), scales=scales)
            r, s = timed(lambda c=cfg: fit(c, init_depth_m=r0.depth_m, init_aif=r0.aif), args.device)
            name = "hybrid" if scales == layered.scales else f"hybrid{scales}"
            done[name] = (r, s + s0)  # its time includes the default fit it starts from
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=Path, nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--budget", type=float, default=1e9, help="seconds; no new scene starts after it")
    ap.add_argument("--fits", nargs="+", default=["default", "layered", "hybrid"])
    ap.add_argument(
        "--hybrid-scales",
        type=lambda v: tuple(int(k) for k in v.split(",")),
        nargs="+",
        default=[FitConfig().scales],
        help="the hybrid's scales, one hybrid fit per value (e.g. 4,2,1 2,1 1)",
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--pack", action="store_true", help="only write the stacks of --sets to --out (.pt)")
    args = ap.parse_args()
    if args.pack:
        torch.save([packed(s) for s in scenes(args.sets)], args.out)
        return
    gather, layered = fit_config(args.iterations, {}), fit_config(args.iterations, {"render_mode": "layered"})
    start, rows = time.perf_counter(), []
    with args.out.open("w") as f:
        for stack in scenes(args.sets):
            if time.perf_counter() - start > args.budget:
                break
            for name, (r, s) in fits(stack, gather, layered, args).items():
                rows.append(row(stack, r, s, name))
                f.write(json.dumps(rows[-1]) + "\n")
                f.flush()
                print(json.dumps(rows[-1]), flush=True)
    for name in dict.fromkeys(r["fit"] for r in rows):
        sel = [r for r in rows if r["fit"] == name]
        keys = [k for k in ("seconds", *KEYS) if k in sel[0]]
        means = " ".join(f"{k}={statistics.fmean(r[k] for r in sel):.4f}" for k in keys)
        print(f"{name}: {len(sel)} scenes {means}")


if __name__ == "__main__":
    main()
