"""Accuracy on physically rendered stacks the model's optics do not share (issue: "beat the paper").

Test data (see ``scripts/make_accuracy_data.py`` and ``benchmarks/splits/``):
- A:  DFD-indoor test split, paper DSLR camera/focus, disc PSF + occlusion-aware layers + sensor noise.
- A': the same scenes rendered with the paper's own model (scatter, Gaussian, K = 7, no noise).
- B:  ``../shared/data/lightfield/antinous_stack`` (real synthetic-aperture optics, box aperture).
- A0: an ablation, not a test set of the issue: A's test scenes without the sensor noise (still 8-bit),
  scored with DFF, the default fit and the fit from the truth only: what the noise costs.
- Bsim: an ablation like A0: B's true AIF and depth re-rendered through focalstack's own lens model, so
  the difference to B is what B's synthetic-aperture optics (box aperture of 9 x 9 views) cost.

Methods: classical DFF + focus stacking; per-scene ``fit`` (defaults: depth-sweep init); a diagnostic fit
started from the true depth and AIF (reads ground truth: what the objective itself allows); the shipped model;
the shipped model fine-tuned self-supervised on the A train split (stacks only); and test-time
adaptation (self-supervised fine-tuning on the test stacks themselves — it uses no ground truth).

    python -m benchmarks.accuracy [--quick] [--train-minutes 10] [--tta-minutes 5]

Prints a markdown table, writes ``docs/results/accuracy.json`` and ``docs/results/accuracy.md``. The JSON is
committed: it is the base ``--merge`` adds rows to, so a fresh clone can rerun single rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks._common import REPO, key_values, machine_info, markdown_table, save
from focalstack.data.stack import FocalStack
from focalstack.eval.metrics import aif_metrics, depth_metrics, valid_mask

SHARED = REPO.parent / "shared" / "data"
#: Test data B.
ANTINOUS = SHARED / "lightfield" / "antinous_stack"
#: (depth (H, W) metres, AIF (3, H, W)), optionally followed by a dict of what the method chose for the
#: scene (kept in ``per_scene``, not averaged).
Predictor = Callable[[FocalStack], tuple]


#: Test sets (--sets); A0 is the noise ablation, Bsim the optics ablation of B.
SETS = ("A", "A'", "B", "A0", "Bsim")
#: Ablation sets -> the only fit rows scored on them (no network rows): enough to show what noise (A0) or
#: B's optics (Bsim) cost the default fit and the objective, and what the latest default change did there.
ABLATION_SETS = {
    "A0": ("default", "no-halo", "oracle"),
    "Bsim": ("default", "no-halo", "oracle", "layered-fill"),
}


def test_sets(
    data_root: Path, limit: int | None, names: tuple[str, ...] = SETS
) -> dict[str, list[FocalStack]]:
    """Load the test stacks of the sets ``names`` (every scene folder; ``limit`` caps the count per set)."""
    sets = {
        "A": data_root / "A_test",
        "A'": data_root / "Aprime_test",
        "A0": data_root / "A0_test",
        "Bsim": data_root / "Bsim",
    }
    out = {n: [_load(p) for p in scene_folders(sets[n])[:limit]] for n in names if n in sets}
    if "B" in names and ANTINOUS.is_dir():
        out["B"] = [_load(ANTINOUS)]
    return out


def set_fit_rows(name: str, keys: list[str]) -> list[str]:
    """The fit rows (``FIT_ROWS`` keys among ``keys``) scored on test set ``name``: all but on ablation sets."""
    return [k for k in keys if k in ABLATION_SETS.get(name, keys)]


def scene_folders(folder: Path) -> list[Path]:
    """The scene folders (with a scene.json) of an accuracy set, in name order.

    Raises:
        SystemExit: the set has not been rendered.
    """
    if not folder.is_dir():
        raise SystemExit(
            f"{folder} is missing: run `python scripts/make_accuracy_data.py` first (with --overwrite if "
            "some sets are there already)"
        )
    return sorted(p for p in folder.iterdir() if (p / "scene.json").is_file())


def _load(folder: Path) -> FocalStack:
    stack = FocalStack.load(folder)
    stack.meta["path"] = str(folder)  # where test-time adaptation finds the scene again
    return stack


def finetune(
    init: str,
    data: Path,
    out: Path,
    minutes: float,
    steps: int,
    seed: int = 0,
    reuse: bool = False,
    loss: dict | None = None,
) -> Path:
    """Self-supervised fine-tuning from ``init`` on the scene folders in ``data``; returns the checkpoint.

    ``reuse`` returns an existing run's checkpoint instead of training again; ``loss`` overrides fields
    of the tta preset's LossConfig.
    """
    if reuse and (out / "last.pt").is_file():
        return out / "last.pt"
    from focalstack.train.presets import get_preset
    from focalstack.train.trainer import Trainer

    cfg = get_preset("tta")
    cfg.init, cfg.out, cfg.seed = init, str(out), seed
    if loss:
        from focalstack.train.config import merge

        cfg.loss = merge(cfg.loss, loss)
    cfg.max_steps, cfg.time_budget_min, cfg.threads = steps, minutes, 2
    scenes = sum(1 for _ in data.iterdir())
    # A batch never exceeds the scene count (test-time adaptation on a single stack).
    cfg.data = dataclasses.replace(
        cfg.data, root=str(data), crop=128, batch_size=min(4, scenes), num_workers=0
    )
    cfg.log = dataclasses.replace(cfg.log, tensorboard=False, progress=True, val_every=0, image_every=0)
    trainer = Trainer(cfg)
    try:
        trainer.fit()
    finally:
        trainer.close()
    return out / "last.pt"


def scene_root(stacks: list[FocalStack], folder: Path) -> Path:
    """A folder holding exactly these scenes (links to their folders), to fine-tune on them."""
    folder.mkdir(parents=True, exist_ok=True)
    for stack in stacks:
        link = folder / stack.name
        if not link.exists():
            link.symlink_to(Path(stack.meta["path"]).resolve(), target_is_directory=True)
    return folder


def network(checkpoint: str | Path | None) -> Predictor:
    from focalstack.inference.predict import load_predictor, predict

    model = load_predictor(checkpoint)
    return lambda stack: predict(stack, model=model)


#: Changes of the fit's ablation rows, each adding one to the row above: the sweep's near-surface halos
#: kept (the default before session 24), no nearest-slice sweep where the
#: sweep is pinned near (the default before session 22), no low-pass on the sweep's
#: residuals (the default before ``sweep_residual_blur_px``), a fixed working range (the
#: default before ``widen_margin``), plain focus stacking for the
#: sweep's AIF (the default before ``noise_aware_aif``), the AIF prior throughout the fit (the paper's
#: way, the default before ``aif_prior="after"``), one noise reference for the sweep (the default before
#: references per intensity), the Gaussian PSF always (the default before the PSF choice) and the
#: sweep's windowed errors only (the default before the semi-global sweep).
NO_HALO_FIT = {"retract_halos": False}
NO_NEAR_SLICE_PINNED_FIT = {"near_slice_when_pinned": False, **NO_HALO_FIT}
NO_RESIDUAL_BLUR_FIT = {"sweep_residual_blur_px": 0.0, **NO_NEAR_SLICE_PINNED_FIT}
FIXED_RANGE_FIT = {"widen_margin": 0, **NO_RESIDUAL_BLUR_FIT}
PLAIN_STACKING_FIT = {"noise_aware_aif": False, **FIXED_RANGE_FIT}
JOINT_AIF_FIT = {"aif_prior": "joint", **PLAIN_STACKING_FIT}
SINGLE_NOISE_FIT = {"sweep_noise_levels": 1, **JOINT_AIF_FIT}
GAUSSIAN_FIT = {"psf": "gaussian", **SINGLE_NOISE_FIT}
WINDOW_FIT = {"sweep_penalties": None, **GAUSSIAN_FIT}
#: Alternatives to the default. The coarse steps and the layered renderer were measured before the
#: nearest-slice sweep where pinned near became the default (session 22) and keep it off, so that their
#: rows stay what was measured; compare them with the row without it. The near-slice sweep in every
#: scene was measured before the halo retraction (session 24) and keeps it off; compare it with the
#: row without the halo retraction.
#: Not a default: more steps at coarse scales (better on A, worse on A' and B).
COARSE_STEPS_FIT = {"step_growth": 2.0, **NO_NEAR_SLICE_PINNED_FIT}
#: Not a default: the occlusion-aware renderer in the fit (slower: README, session 19).
LAYERED_FIT = {"render_mode": "layered", **NO_NEAR_SLICE_PINNED_FIT}
#: Not a default: the sweep re-renders the least-blurred slice for depths nearer than every focus distance,
#: in every scene (README, session 20; with it on, the default's gate changes nothing).
NEAR_SLICE_FIT = {"sweep_relative_beyond_focus": True, **NO_HALO_FIT}
#: Not a default (3x the time, worse on B): a second stage, the layered fit started where the default fit
#: ends (README, session 21).
REFINE_LAYERED_FIT = {"refine": "layered"}
#: Not a default (3-5x slower; better on B and Bsim, worse on A): the layered fit with each layer continued
#: behind the clearly nearer pixels around it (``layered_fill_hidden``; README, session 25).
LAYERED_FILL_FIT = {"render_mode": "layered", "layered_fill_hidden": True}
ORACLE = "diagnostic: fit started from the truth (reads GT)"
ORACLE_LAYERED = "diagnostic: fit with the layered renderer started from the truth (reads GT)"
#: Rows started from the true depth and AIF: label -> the fit's changes.
FROM_TRUTH = {ORACLE: {}, ORACLE_LAYERED: LAYERED_FIT}
#: --fit-rows key -> (row label, changes); the label's ``{it}`` is the iterations per scale; rows labelled
#: with a ``FROM_TRUTH`` key start from the truth.
FIT_ROWS = {
    "default": ("fit ({it} it/scale)", {}),
    "layered": ("fit with the occlusion-aware layered renderer", LAYERED_FIT),
    "near-slice": (
        "fit with the sweep re-rendering the nearest slice nearer than every focus",
        NEAR_SLICE_FIT,
    ),
    "refine-layered": ("fit, then refined with the occlusion-aware layered renderer", REFINE_LAYERED_FIT),
    "layered-fill": (
        "fit with the layered renderer, hidden surfaces filled behind near edges",
        LAYERED_FILL_FIT,
    ),
    "coarse-steps": ("fit with {it} k² it at size 1/k (step_growth 2)", COARSE_STEPS_FIT),
    "no-halo": ("fit without retracting the sweep's near-surface halos", NO_HALO_FIT),
    "no-near-slice-pinned": (
        "fit without the nearest-slice sweep where the sweep is pinned near",
        NO_NEAR_SLICE_PINNED_FIT,
    ),
    "no-residual-blur": ("fit without the sweep's residual low-pass", NO_RESIDUAL_BLUR_FIT),
    "fixed-range": ("fit with the range fixed (not widened where the sweep is pinned)", FIXED_RANGE_FIT),
    "plain-stacking": ("fit with plain focus stacking for the sweep", PLAIN_STACKING_FIT),
    "joint-aif": ("fit with the AIF prior throughout (the paper's)", JOINT_AIF_FIT),
    "single-noise": ("fit with one noise reference", SINGLE_NOISE_FIT),
    "gaussian": ("fit with the Gaussian PSF", GAUSSIAN_FIT),
    "window": ("fit with the Gaussian PSF, without the semi-global sweep", WINDOW_FIT),
    "oracle": (ORACLE, FROM_TRUTH[ORACLE]),
    "oracle-layered": (ORACLE_LAYERED, FROM_TRUTH[ORACLE_LAYERED]),
}
#: Rows run only when --fit-rows names them: the layered renderer's (several times slower), and the
#: near-slice sweep's and the layered refinement's (added later, scored on A and B only).
ASKED_FOR_BY_NAME = ("layered", "oracle-layered", "near-slice", "refine-layered", "layered-fill")
#: The rows run without --fit-rows.
DEFAULT_FIT_ROWS = [k for k in FIT_ROWS if k not in ASKED_FOR_BY_NAME]


def true_start_depth(stack: FocalStack) -> torch.Tensor:
    """(H, W) the true depth (metres) as a fit's start, its invalid pixels at the valid pixels' median."""
    gt = stack.depth_m.float()
    valid = valid_mask(gt)
    return torch.where(valid, gt, gt[valid].median())


def fit_predictor(
    iterations: int,
    oracle: bool = False,
    changes: dict | None = None,
    losses: list[float] | None = None,
) -> Predictor:
    """Per-scene fit with the default settings (linear-light re-rendering, sweep init).

    ``oracle`` starts it from the true depth and AIF instead: a diagnostic, not a method (it reads
    ground truth). Where the fit then ends shows what the objective itself allows; the gap between it
    and the normal fit is what the initialisation / optimisation costs. ``changes``: FitConfig and
    LossConfig fields (``benchmarks.fit_procedural.fit_config``). ``losses``, when given, receives each
    fit's final objective (the weighted total of its last step).
    """
    from benchmarks.fit_procedural import fit_config
    from focalstack.inference.fit import fit_scene

    cfg = fit_config(iterations, changes or {})

    def run(stack: FocalStack) -> tuple[torch.Tensor, torch.Tensor]:
        init = {}
        if oracle:
            init = {"init_depth_m": true_start_depth(stack), "init_aif": stack.aif.float()}
        r = fit_scene(stack, cfg, progress=False, **init)
        if losses is not None:
            losses.append(r.history[-1]["total"] if r.history else float("nan"))
        chosen = {
            "psf": r.psf,
            "depth_range_m": list(r.depth_range_m),
            "sweep_residual_blur_px": r.sweep_residual_blur_px,
            "sweep_relative_beyond_focus": r.sweep_relative_beyond_focus,
        }
        return r.depth_m, r.aif, chosen

    return run


def score(method: str, dataset: str, stacks: list[FocalStack], predictor: Predictor) -> dict:
    """Mean metrics of one method on one test set (per image, then averaged); ``per_scene`` keeps each."""
    rows, chosen, seconds = [], [], 0.0
    for stack in stacks:
        t0 = time.perf_counter()
        depth, aif, *info = predictor(stack)
        seconds += time.perf_counter() - t0
        chosen.append(info[0] if info else {})
        m = depth_metrics(depth, stack.depth_m, focus_m=stack.focus_m)
        m.update(aif_metrics(aif, stack.aif) if stack.aif is not None else {})
        rows.append(m)
    mean = {k: statistics.fmean(r[k] for r in rows) for k in rows[0]}
    return {
        "method": method,
        "data": dataset,
        "scenes": len(stacks),
        "s_per_scene": seconds / len(stacks),
        **mean,
        "per_scene": [{"scene": s.name, **r, **c} for s, r, c in zip(stacks, rows, chosen)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "accuracy")
    parser.add_argument("--quick", action="store_true", help="2 scenes per set, short budgets (smoke run)")
    parser.add_argument("--limit", type=int, default=None, help="first N test scenes per set (default: all)")
    parser.add_argument("--train-minutes", type=float, default=10.0)
    parser.add_argument("--tta-minutes", type=float, default=5.0)
    parser.add_argument("--fit-iterations", type=int, default=100)
    parser.add_argument(
        "--finetune-loss",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a LossConfig field of the fine-tuning runs (YAML value), e.g. render_mode=levels",
    )
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "accuracy")
    parser.add_argument("--reuse-runs", action="store_true", help="reuse fine-tuned checkpoints under --runs")
    parser.add_argument(
        "--fit-only",
        action="store_true",
        help="score only DFF and the fit rows (the default, its ablations, the diagnostic from the truth); with "
        "--merge, the other rows are kept from the existing --out JSON",
    )
    parser.add_argument(
        "--fit-rows",
        nargs="+",
        choices=list(FIT_ROWS),
        default=DEFAULT_FIT_ROWS,
        help="which fit rows to score (default: all but the layered renderer's); with --merge, the others "
        "are kept from --out",
    )
    parser.add_argument(
        "--sets",
        nargs="+",
        choices=SETS,
        default=list(SETS),
        help="test sets to score (default: all); with --merge, the others' rows are kept from --out",
    )
    parser.add_argument(
        "--merge", action="store_true", help="keep rows of other methods from --out (see --fit-only)"
    )
    parser.add_argument("--out", default=str(REPO / "docs" / "results" / "accuracy.json"))
    parser.add_argument("--md", default=str(REPO / "docs" / "results" / "accuracy.md"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    limit = 2 if args.quick else args.limit
    train_min, tta_min = (0.2, 0.2) if args.quick else (args.train_minutes, args.tta_minutes)
    fit_iters = 10 if args.quick else args.fit_iterations
    sets = test_sets(args.data, limit, tuple(args.sets))
    loss = key_values(args.finetune_loss, "--finetune-loss")

    from focalstack.inference.baselines import dff_predict

    # DFF is cheap, and the AIF target is relative to it: scored with the fit rows too
    rows = [score("DFF + focus stacking", name, stacks, dff_predict) for name, stacks in sets.items()]
    for name, stacks in sets.items():
        has_truth = all(s.aif is not None and s.depth_m is not None for s in stacks)
        for key in set_fit_rows(name, args.fit_rows):
            label, changes = FIT_ROWS[key]
            if label not in FROM_TRUTH:
                rows.append(
                    score(label.format(it=fit_iters), name, stacks, fit_predictor(fit_iters, changes=changes))
                )
            elif has_truth:
                rows.append(
                    score(label, name, stacks, fit_predictor(fit_iters, oracle=True, changes=changes))
                )
    if not args.fit_only:
        rows += other_rows(sets, args, train_min, tta_min, loss)
    methods = [
        "DFF + focus stacking",
        *(label.format(it=fit_iters) for label, _ in FIT_ROWS.values()),
        "shipped model",
        f"fine-tuned on A train ({train_min:g} min)",
        f"test-time adaptation ({tta_min:g} min, no GT)",
    ]
    if args.merge:
        rows = merged(args.out, rows, methods, settings_of(args))
    rows.sort(key=lambda r: (r["data"], methods.index(r["method"])))
    report(rows, args)


def settings_of(args: argparse.Namespace) -> dict[str, str]:
    """The run's arguments as strings; paths inside the repository relative to it (the committed JSON is
    merged into from clones elsewhere)."""

    def text(v: object) -> str:
        return (
            str(v.resolve().relative_to(REPO))
            if isinstance(v, Path) and v.resolve().is_relative_to(REPO)
            else str(v)
        )

    return {k: text(v) for k, v in vars(args).items()}


def merged(path: str, new: list[dict], methods: list[str], settings: dict[str, str]) -> list[dict]:
    """``new`` plus the rows of ``path`` whose method is a current label not in ``new`` (same sets/scenes).

    Raises:
        SystemExit: the existing file was run with another data folder, scene limit, fit iterations or
            training minutes (these are in the row labels: rows that do not match would be dropped).
    """
    old = json.loads(Path(path).read_text())
    same = ("data", "limit", "quick", "fit_iterations", "train_minutes", "tta_minutes")
    differ = [k for k in same if old["args"].get(k) != settings[k]]
    if differ:
        got = ", ".join(f"{k} {old['args'].get(k)} (now {settings[k]})" for k in differ)
        raise SystemExit(f"--merge: {path} was run with other settings: {got}")
    done = {(r["data"], r["method"]) for r in new}
    keep = [r for r in old["rows"] if r["method"] in methods and (r["data"], r["method"]) not in done]
    return keep + new


def other_rows(sets, args, train_min: float, tta_min: float, loss: dict) -> list[dict]:
    """The shipped model, fine-tuning on A train and test-time adaptation."""
    rows = []
    sets = {name: stacks for name, stacks in sets.items() if name not in ABLATION_SETS}
    for name, stacks in sets.items():
        rows.append(score("shipped model", name, stacks, network(None)))
    trained = finetune(
        "default",
        args.data / "A_train",
        args.runs / "train_A",
        train_min,
        100_000,
        reuse=args.reuse_runs,
        loss=loss,
    )
    for name, stacks in sets.items():
        rows.append(score(f"fine-tuned on A train ({train_min:g} min)", name, stacks, network(trained)))
    for name, stacks in sets.items():
        tag = {"A": "A", "A'": "Aprime", "B": "B"}[name]
        folder = scene_root(stacks, args.runs / f"tta_{tag}_data")
        tta = finetune(
            "default", folder, args.runs / f"tta_{tag}", tta_min, 100_000, reuse=args.reuse_runs, loss=loss
        )
        rows.append(score(f"test-time adaptation ({tta_min:g} min, no GT)", name, stacks, network(tta)))
    return rows


def report(rows: list[dict], args: argparse.Namespace) -> None:
    """Print and save the table (JSON and markdown)."""
    cols = ["data", "method", "scenes", "delta1", "absrel", "error_slices", "aif_psnr", "s_per_scene"]
    table = markdown_table(rows, cols)
    targets = (
        "Targets on A: delta1 >= 0.95, AbsRel <= 0.10, error <= 0.15 slices, AIF PSNR >= DFF + 1 dB; "
        "on B: error <= 0.15 slices. A0 (an ablation, no targets): A's test scenes rendered without "
        "sensor noise (still 8-bit). Bsim (an ablation, no targets): B's true AIF and depth re-rendered "
        "through focalstack's own lens model (layered, disc PSF, 8-bit, no noise)."
    )
    settings = settings_of(args)
    save(
        args.out,
        args.md,
        {"machine": machine_info(), "args": settings, "rows": rows},
        table + "\n\n" + targets,
    )


if __name__ == "__main__":
    main()
