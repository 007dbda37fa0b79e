"""Renderer speed, memory and accuracy: ring gather / scatter / disc against unfold per-pixel references.

Every (configuration, method) runs in a fresh subprocess with 2 threads. Peak memory is what the runs
add to the process: on CPU the resident-set high-water mark (VmHWM, reset after the inputs exist) minus
the resident set then; on CUDA max_memory_allocated minus the allocation then. Times are the median
(and best) of several runs after a warm-up; forward is timed under no_grad, forward+backward with
gradients for both the image and sigma. Errors are max |output - reference| with the reference a
float64 explicit-tap loop of the same semantics (images in [0, 1], sigma uniform in [0, 2.5] px). The
compute floor is the ring method's arithmetic divided by the measured matmul FLOP rate; the memory floor
is the tensors a renderer must read or write once divided by the measured copy bandwidth.

    python benchmarks/render.py [--quick] [--device cpu|cuda] [--config B S SIZE K ...] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from benchmarks._common import REPO, machine_info, markdown_table, save, time_it
from focalstack.optics import render_stack
from focalstack.optics._rings import window_rings
from focalstack.utils.io import atomic_write

THREADS = 2
SIGMA_MAX = 2.5
# (B, S, size, K)
CONFIGS = [(b, 5, size, k) for size in (128, 256) for k in (7, 11) for b in (1, 8)]
QUICK_CONFIGS = [(1, 2, 32, 7)]
# name: (semantics, psf, implementation)
METHODS = {
    "gather": ("gather", "gaussian", "ring"),
    "scatter": ("scatter", "gaussian", "ring"),
    "disc": ("gather", "disc", "ring"),
    "unfold-gather": ("gather", "gaussian", "unfold"),
    "unfold-scatter": ("scatter", "gaussian", "unfold"),
}
TARGET = (8, 5, 256, 7)  # B*S = 40, 256^2, K = 7
#: Large blur (B, S, size, sigma_max px): the untruncated "levels" mode against the exact ring gather
#: with a window of 4 sigma_max, and the levels mode alone at a blur no window-based render affords.
LARGE_CASES = [(1, 5, 128, 6.0), (1, 5, 128, 24.0)]


# ---------------------------------------------------------------- references


def _tap_weights(r2: torch.Tensor, sigma: torch.Tensor, psf: str) -> torch.Tensor:
    if psf == "gaussian":
        return torch.exp(-r2 / (2 * sigma.clamp_min(1e-6) ** 2))
    return (2 * sigma + 0.5 - r2.sqrt()).clamp(0, 1)


def _offsets_r2(k: int, like: torch.Tensor) -> torch.Tensor:
    """(K*K,) squared radius of every window tap, in unfold's (dy, dx) row-major order."""
    d = torch.arange(k, dtype=like.dtype, device=like.device) - k // 2
    return (d[:, None] ** 2 + d[None, :] ** 2).flatten()


def unfold_render(aif: torch.Tensor, sigma: torch.Tensor, k: int, semantics: str, psf: str) -> torch.Tensor:
    """Per-pixel K x K kernels through unfold/fold (autograd), one slice at a time to bound memory."""
    b, c, h, w = aif.shape
    r = k // 2
    r2 = _offsets_r2(k, aif).view(1, -1, 1)
    outs = []
    for s in range(sigma.shape[1]):
        sig = sigma[:, s].reshape(b, 1, h * w)
        wt = _tap_weights(r2, sig, psf)  # (B, K*K, H*W)
        if semantics == "gather":  # kernel of the output pixel, renormalised over in-image taps
            cols = F.unfold(aif, k, padding=r).view(b, c, k * k, h * w)
            inside = F.unfold(torch.ones_like(aif[:1, :1]), k, padding=r)
            wt = wt * inside
            out = (cols * wt[:, None]).sum(2) / wt.sum(1, keepdim=True)
        else:  # kernel of the source pixel, sent through fold; delta below a 1 px CoC radius
            delta = (r2 == 0).to(aif.dtype).expand_as(wt)
            wt = torch.where(sig > 0.5, wt, delta)
            a = wt / wt.sum(1, keepdim=True)
            src = torch.cat([aif, torch.ones_like(aif[:, :1])], 1).view(b, c + 1, 1, h * w)
            sent = F.fold((src * a[:, None]).view(b, (c + 1) * k * k, h * w), (h, w), k, padding=r)
            out = (sent[:, :c] / sent[:, c:]).view(b, c, h * w)
        outs.append(out.view(b, c, h, w))
    return torch.stack(outs, 1)


@torch.no_grad()
def loop_reference(aif: torch.Tensor, sigma: torch.Tensor, k: int, semantics: str, psf: str) -> torch.Tensor:
    """Float64 explicit-tap loop of either semantics (the exact reference)."""
    aif, sigma = aif.double(), sigma.double()[:, :, None]
    b, c, h, w = aif.shape
    r = k // 2
    taps = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    weights = {o: _tap_weights(torch.tensor(float(o[0] ** 2 + o[1] ** 2)), sigma, psf) for o in taps}
    if semantics == "gather":  # kernel of the output pixel over the in-image taps
        xp = F.pad(aif, (r, r, r, r))[:, None]
        inside = F.pad(torch.ones_like(aif[:, :1]), (r, r, r, r))[:, None]
        num, den = 0.0, 0.0
        for (dy, dx), wt in weights.items():
            view = (..., slice(r + dy, r + dy + h), slice(r + dx, r + dx + w))
            num = num + wt * xp[view]
            den = den + wt * inside[view]
        return num / den
    # scatter: kernel of the source pixel, normalised over its window, delta below a 1 px CoC radius
    z = sum(weights.values())
    num = aif.new_zeros((b, sigma.shape[1], c, h + 2 * r, w + 2 * r))
    den = aif.new_zeros((b, sigma.shape[1], 1, h + 2 * r, w + 2 * r))
    for (dy, dx), wt in weights.items():
        a = torch.where(sigma > 0.5, wt / z, float(dy == 0 and dx == 0))
        view = (..., slice(r + dy, r + dy + h), slice(r + dx, r + dx + w))
        num[view] += a * aif[:, None]
        den[view] += a
    return num[..., r : r + h, r : r + w] / den[..., r : r + h, r : r + w]


# ---------------------------------------------------------------- measurement (child process)


def _inputs(b: int, s: int, size: int, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    aif = torch.rand(b, 3, size, size, generator=gen)
    sigma = SIGMA_MAX * torch.rand(b, s, size, size, generator=gen)
    grad = torch.randn(b, s, 3, size, size, generator=gen)
    return aif.to(device), sigma.to(device), grad.to(device)


def _run(method: str, aif: torch.Tensor, sigma: torch.Tensor, k: int) -> torch.Tensor:
    semantics, psf, impl = METHODS[method]
    if impl == "unfold":
        return unfold_render(aif, sigma, k, semantics, psf)
    return render_stack(aif, sigma, kernel_size=k, mode=semantics, psf=psf)


def _rss_mb(field: str) -> float:
    """``VmRSS`` (current) or ``VmHWM`` (peak since the last reset) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not in /proc/self/status")


def _timed(fn, reps: int, sync: bool) -> tuple[float, float]:
    """(median, best) wall time of ``fn()`` in ms after one warm-up call."""
    fn()
    times = [time_it(fn, reps=1, warmup=0, sync=sync) for _ in range(reps)]
    return statistics.median(times), min(times)


def measure(config: tuple[int, int, int, int], method: str, device: str, reps: int) -> dict:
    """Time one method on one configuration and measure its peak memory.

    CPU peak: the resident-set high-water mark is reset (``/proc/self/clear_refs``) after the inputs
    exist, so the peak counts everything the runs allocate (outputs, gradients, temporaries, caches).
    """
    torch.set_num_threads(THREADS)
    b, s, size, k = config
    aif, sigma, grad = _inputs(b, s, size, device)
    cuda = device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")
        base = _rss_mb("VmRSS")

    def forward() -> None:
        with torch.no_grad():
            _run(method, aif, sigma, k)

    def forward_backward() -> None:
        a, sg = aif.detach().requires_grad_(), sigma.detach().requires_grad_()
        _run(method, a, sg, k).backward(grad)

    n = max(1, reps // 2) if METHODS[method][2] == "unfold" else reps
    fwd, fwd_best = _timed(forward, n, cuda)
    fwd_bwd, fwd_bwd_best = _timed(forward_backward, n, cuda)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if cuda else _rss_mb("VmHWM") - base
    return {
        "fwd_ms": fwd,
        "fwd_best_ms": fwd_best,
        "fwd_bwd_ms": fwd_bwd,
        "fwd_bwd_best_ms": fwd_bwd_best,
        "peak_mb": peak,
    }


def measure_large(case: tuple[int, int, int, float], device: str, reps: int) -> list[dict]:
    """Large blur: ``mode="levels"`` (untruncated) and, while affordable, the exact ring gather."""
    torch.set_num_threads(THREADS)
    b, s, size, smax = case
    aif, _, grad = _inputs(b, s, size, device)
    sigma = smax * torch.rand(b, s, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    k = 2 * math.ceil(4 * smax) + 1
    runs = {"levels": lambda a, sg: render_stack(a, sg, mode="levels")}
    if k <= 63:
        runs[f"gather K={k}"] = lambda a, sg: render_stack(a, sg, kernel_size=k)
    rows = []
    for name, fn in runs.items():

        def forward(fn=fn) -> None:
            with torch.no_grad():
                fn(aif, sigma)

        def forward_backward(fn=fn) -> None:
            a, sg = aif.detach().requires_grad_(), sigma.detach().requires_grad_()
            fn(a, sg).backward(grad)

        n = max(1, reps // 3)
        fwd, fwd_bwd = (
            _timed(forward, n, device == "cuda")[0],
            _timed(forward_backward, n, device == "cuda")[0],
        )
        row = {"B x S": f"{b} x {s}", "size": f"{size}^2", "sigma_max": smax, "method": name}
        rows.append(row | {"fwd_ms": fwd, "fwd_bwd_ms": fwd_bwd})
    if len(runs) > 1:  # error of the levels against the exact (float64) ring gather of the same blur
        exact = render_stack(aif.double(), sigma.double(), kernel_size=k)
        rows[0]["max_err"] = float(
            (render_stack(aif.double(), sigma.double(), mode="levels") - exact).abs().max()
        )
    return rows


#: ATen ops that only make views (no data moved): no bandwidth figure for them.
VIEW_OPS = {
    f"aten::{n}"
    for n in (
        "slice",
        "select",
        "view",
        "as_strided",
        "unsqueeze",
        "expand",
        "unbind",
        "squeeze",
        "permute",
        "transpose",
        "t",
        "alias",
        "narrow",
        "reshape",
    )
}


def measure_breakdown(config: tuple[int, int, int, int], reps: int) -> dict:
    """Where gather forward+backward spends its time on the CPU: ATen ops by self time (torch.profiler).

    Per op: calls and self time per forward+backward, and the bytes its float32 operands span (every
    input and ``out=`` tensor once) per second of its time. ``dispatch_us`` is the measured cost of one
    call of a 1-element ``add`` (Python + dispatcher + launch), so ``calls * dispatch_us`` is the part of
    the time that does not depend on the image size.
    """
    torch.set_num_threads(THREADS)
    b, s, size, k = config
    aif, sigma, grad = _inputs(b, s, size, "cpu")

    def forward_backward() -> None:
        a, sg = aif.detach().requires_grad_(), sigma.detach().requires_grad_()
        render_stack(a, sg, kernel_size=k).backward(grad)

    wall = _timed(forward_backward, reps, False)[0]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(reps):
            forward_backward()
    ops: dict[str, dict[str, float]] = {}
    for e in prof.events():
        if not e.name.startswith("aten::") or e.self_cpu_time_total <= 0:
            continue
        row = ops.setdefault(e.name, {"calls": 0.0, "self_ms": 0.0, "bytes": 0.0})
        row["calls"] += 1 / reps
        row["self_ms"] += e.self_cpu_time_total / 1e3 / reps
        row["bytes"] += 4.0 * sum(math.prod(sh) for sh in e.input_shapes if sh) / reps
    one, other, out = torch.zeros(1), torch.zeros(1), torch.zeros(1)
    dispatch_us = time_it(lambda: [torch.add(one, other, out=out) for _ in range(1000)], reps=5)
    rows = [
        {
            "op": name,
            "calls": v["calls"],
            "self_ms": v["self_ms"],
            "share": v["self_ms"] / wall,
            "GB_per_s": None if name in VIEW_OPS else v["bytes"] / max(v["self_ms"], 1e-9) / 1e6,
        }
        for name, v in sorted(ops.items(), key=lambda kv: -kv[1]["self_ms"])
    ]
    calls = sum(r["calls"] for r in rows)
    return {
        "config": list(config),
        "fwd_bwd_ms": wall,
        "calls": calls,
        "dispatch_us": dispatch_us,
        "ops": rows,
    }


def measure_floor(device: str) -> dict:
    """Measured matmul FLOP rate and copy bandwidth: the two ceilings the renderer is held against."""
    torch.set_num_threads(THREADS)
    cuda = device == "cuda"
    n = 4096 if cuda else 1536
    a, b = torch.rand(n, n, device=device), torch.rand(n, n, device=device)
    mm_ms = time_it(lambda: a @ b, reps=5, warmup=2, sync=cuda)
    x = torch.rand(2**25 if cuda else 2**24, device=device)
    y = torch.empty_like(x)
    copy_ms = time_it(lambda: y.copy_(x), reps=5, warmup=2, sync=cuda)
    return {"gflops": 2 * n**3 / mm_ms / 1e6, "copy_gb_s": 2 * x.numel() * 4 / copy_ms / 1e6}


def ring_flops(b: int, s: int, size: int, k: int, c: int = 3) -> float:
    """Arithmetic of ring gather, forward + backward (both gradients), Gaussian PSF.

    Ring sums of the image and their adjoint: ~K^2 adds per channel and pixel each; per slice and pixel:
    the Kr weights, then one multiply-add per ring and channel for the output, for d out / d sigma and
    for the image gradient, plus a few per-pixel divisions and products.
    """
    p, kr = size * size, len(window_rings(k))
    per_image = 2 * c * p * k * k
    per_slice = p * (kr + 3 * 2 * kr * c + 8 * c + 12)
    return float(b * per_image + b * s * per_slice)


def min_traffic_bytes(b: int, s: int, size: int, c: int = 3) -> float:
    """Bytes a renderer must move at least once: image, sigma, output, its gradient, both input grads."""
    p = size * size
    return 4.0 * p * (2 * b * c + 2 * b * s + 2 * b * s * c)


# ---------------------------------------------------------------- driver


def _child(payload: dict) -> dict:
    """Run in a fresh interpreter; returns its JSON result."""
    cmd = [sys.executable, "-m", "benchmarks.render", "--child", json.dumps(payload)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({payload}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(configs: list, device: str, reps: int, quick: bool) -> dict:
    """All methods on all configurations.

    On CPU every method gets its own child (ru_maxrss is a process-wide high-water mark); CUDA peaks are
    reset per method, so there (and in quick runs) the methods of a configuration share one child.
    """
    floor = None
    rows = []
    shared = quick or device == "cuda"
    jobs = (
        [(cfg, list(METHODS)) for cfg in configs] if shared else [(c, [m]) for c in configs for m in METHODS]
    )
    refs: dict = {}
    for cfg, methods in tqdm(jobs, desc="render benchmark", unit="run"):
        b, s, size, k = cfg
        job = _child(
            {"config": cfg, "methods": methods, "device": device, "reps": reps, "floor": floor is None}
        )
        floor, results = floor or job["floor"], job["results"]
        aif, sigma, _ = _inputs(b, s, size, "cpu")
        refs = {key: ref for key, ref in refs.items() if key[0] == cfg}  # one configuration's references
        for method, result in zip(methods, results):
            semantics, psf, _ = METHODS[method]
            if (cfg, semantics, psf) not in refs:
                refs[cfg, semantics, psf] = loop_reference(aif, sigma, k, semantics, psf)
            with torch.no_grad():
                out = _run(method, aif.to(device), sigma.to(device), k)
            err = float((out.double().cpu() - refs[cfg, semantics, psf]).abs().max())
            rows.append(
                {"B x S": f"{b} x {s}", "size": f"{size}^2", "K": k, "method": method}
                | result
                | {"max_err": err, "config": list(cfg)}
            )
    for row in rows:
        semantics, psf, impl = METHODS[row["method"]]
        same = [r for r in rows if r["config"] == row["config"]]
        ref = next((r for r in same if r["method"] == f"unfold-{semantics}"), None)
        if ref is not None and impl == "ring":  # speed-up over the unfold reference of the same semantics
            row["speedup_fwd_bwd"] = ref["fwd_bwd_ms"] / row["fwd_bwd_ms"]
        if (semantics, psf, impl) == ("gather", "gaussian", "ring"):
            b, s, size, k = row["config"]
            compute = ring_flops(b, s, size, k) / (floor["gflops"] * 1e9) * 1e3
            memory = min_traffic_bytes(b, s, size) / (floor["copy_gb_s"] * 1e9) * 1e3
            row["floor_ms"] = max(compute, memory)
            row["x_floor"] = row["fwd_bwd_ms"] / row["floor_ms"]
    return {
        "machine": machine_info()
        | {"threads": THREADS, "device": device, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")},
        "quick": quick,
        "floor": floor,
        "results": rows,
        "targets": {} if quick else _targets(rows),
    }


def _targets(rows: list) -> dict:
    pick = {r["method"]: r for r in rows if r["config"] == list(TARGET)}
    if "gather" not in pick:
        return {}
    g, sc = pick["gather"], pick.get("scatter", {})
    return {
        "config": "B*S = 40, 256^2, K = 7, forward+backward",
        "gather_ms <= 60 (median, best)": [g["fwd_bwd_ms"], g["fwd_bwd_best_ms"], g["fwd_bwd_ms"] <= 60],
        "gather speed-up >= 40": [g.get("speedup_fwd_bwd"), (g.get("speedup_fwd_bwd") or 0) >= 40],
        "gather max_err <= 1e-3": [g["max_err"], g["max_err"] <= 1e-3],
        "gather peak_mb <= 400": [g["peak_mb"], g["peak_mb"] <= 400],
        "scatter speed-up >= 10": [sc.get("speedup_fwd_bwd"), (sc.get("speedup_fwd_bwd") or 0) >= 10],
    }


def breakdown_text(bd: dict, top: int = 8) -> str:
    """Markdown: the ops that take most of gather's forward+backward time, and the dispatch estimate."""
    b, s, size, k = bd["config"]
    dispatch_ms = bd["calls"] * bd["dispatch_us"] / 1e3
    head = (
        f"Where gather's forward+backward time goes (B·S = {b * s}, {size}², K = {k}; torch.profiler, self "
        f"time per op; GB_per_s = bytes the op's operands span / its time): {bd['fwd_bwd_ms']:.0f} ms in "
        f"{bd['calls']:.0f} ATen calls; at {bd['dispatch_us']:.1f} µs per call (a 1-element add) the fixed "
        f"per-call cost is ~{dispatch_ms:.0f} ms."
    )
    rows = [dict(r) for r in bd["ops"][:top]]
    for r in rows:
        r["share"] = f"{100 * r['share']:.0f} %"
    return head + "\n\n" + markdown_table(rows, ["op", "calls", "self_ms", "share", "GB_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one tiny configuration, one rep (smoke run)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument(
        "--config", type=int, nargs=4, action="append", metavar=("B", "S", "SIZE", "K"), help="repeatable"
    )
    parser.add_argument("--out", default=None, help="JSON path (default bench_out/render[_breakdown].json)")
    parser.add_argument("--md", default=None, help="markdown table path (default docs/results/render.md)")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="only the CPU time breakdown of gather at the target config (docs/results/render_breakdown.md)",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        job = json.loads(args.child)
        if "breakdown" in job:
            print(json.dumps({"results": measure_breakdown(tuple(job["breakdown"]), job["reps"])}))
            return
        if "large" in job:
            print(json.dumps({"results": measure_large(tuple(job["large"]), job["device"], job["reps"])}))
            return
        cfg, device = tuple(job["config"]), job["device"]
        results = [measure(cfg, m, device, job["reps"]) for m in job["methods"]]
        print(json.dumps({"results": results, "floor": measure_floor(device) if job["floor"] else None}))
        return
    if args.breakdown:
        result = _child({"breakdown": TARGET, "reps": args.reps})["results"]
        text = breakdown_text(result)
        out = args.out or REPO / "bench_out" / "render_breakdown.json"
        md = args.md or REPO / "docs" / "results" / "render_breakdown.md"
        save(out, md, {"machine": machine_info(), "breakdown": result}, text)
        return
    configs = QUICK_CONFIGS if args.quick else [tuple(c) for c in args.config] if args.config else CONFIGS
    reps = 1 if args.quick else args.reps
    payload = run(configs, args.device, reps, args.quick)
    large_cases = [] if args.quick or args.config else LARGE_CASES
    payload["large_blur"] = [
        row
        for case in large_cases
        for row in _child({"large": case, "device": args.device, "reps": reps})["results"]
    ]
    columns = [
        "B x S",
        "size",
        "K",
        "method",
        "fwd_ms",
        "fwd_bwd_ms",
        "fwd_bwd_best_ms",
        "peak_mb",
        "max_err",
        "speedup_fwd_bwd",
        "floor_ms",
        "x_floor",
    ]
    table = markdown_table(payload["results"], columns)
    fl = payload["floor"]
    notes = [
        "",
        f"{THREADS} threads on {args.device} (OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
        f"{payload['machine']['date']}); medians, best of the forward+backward runs too; measured matmul {fl['gflops']:.0f} GFLOP/s, copy "
        f"{fl['copy_gb_s']:.1f} GB/s. floor_ms = max(ring FLOPs / matmul rate, minimal traffic / copy rate); "
        "x_floor = fwd_bwd_ms / floor_ms. max_err vs a float64 tap-loop reference.",
    ]
    notes += [f"- {name}: {value}" for name, value in payload["targets"].items()]
    if payload["large_blur"]:
        notes += [
            "",
            'Large blur (sigma uniform in [0, sigma_max] px): `mode="levels"` (untruncated Gaussian, '
            "separable blur levels interpolated in variance) against the exact ring gather with a 4 sigma_max "
            "window; max_err of the levels vs that gather in float64 (images in [0, 1]).",
            "",
            markdown_table(
                payload["large_blur"],
                ["B x S", "size", "sigma_max", "method", "fwd_ms", "fwd_bwd_ms", "max_err"],
            ),
        ]
    text = table + "\n" + "\n".join(notes)
    md = args.md or (None if args.quick else REPO / "docs" / "results" / "render.md")
    save(args.out or REPO / "bench_out" / "render.json", None, payload, text)
    if md is not None:
        atomic_write(md, lambda p: p.write_text(text + "\n"))  # spliced into README.md as is
        print(f"wrote {md}")


if __name__ == "__main__":
    main()
