"""``make bench``: rerun every benchmark and refresh the README tables (an estimated 16 h on 2 CPU cores,
of which about 2.5 h are the fit's 256-px sweep noise references; never timed end to end).

Order: renderer, inference speed, learning benchmark (shipped recipe, the paper's DAIF-Net, the
shipped recipe without its focus prior), shipped weights, per-scene fits on procedural scenes, the
fit's PSF choice, accuracy protocol (renders its data first when missing), its figures, the fit's
AIF-prior ablation, step schedule, noise ablation and range widening on A's train split, the noise
analysis, the edge analysis of B and its start ablation, the working-range coverage of A, ablations, held-out-slice evaluation on real stacks, README gallery, README splice. Seeds are fixed
in each script.
"""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks._common import REPO
from benchmarks.accuracy import ANTINOUS

STEPS = [
    ["-m", "benchmarks.render"],
    ["-m", "benchmarks.render", "--breakdown"],
    ["-m", "benchmarks.predict"],
    ["-m", "benchmarks.train_procedural", "--minutes", "10"],  # the shipped recipe
    [
        "-m",
        "benchmarks.train_procedural",
        "--preset",
        "procedural-cpu",  # the paper's plain DAIF-Net
        "--minutes",
        "10",
        "--out",
        "bench_out/train_procedural_daifnet.json",
        "--md",
        "docs/results/train_procedural_daifnet.md",
    ],
    [
        "-m",
        "benchmarks.train_procedural",
        "--loss",
        "focus_prior_weight=0",  # the shipped recipe without its focus prior
        "--minutes",
        "10",
        "--run",
        "bench_out/train_procedural_noprior_run",
        "--out",
        "bench_out/train_procedural_noprior.json",
        "--md",
        "docs/results/train_procedural_noprior.md",
    ],
    ["-m", "benchmarks.shipped_procedural"],
    ["-m", "benchmarks.fit_procedural"],
    ["-m", "benchmarks.psf_choice"],
    ["scripts/make_accuracy_data.py", "--overwrite"],  # only when a set is missing (see main)
    # the settings of the README's accuracy table (all 20 test scenes per set; 68 min measured before
    # the fit's AIF-only stage and its ablation row, which add about 25 min of fits, and the
    # step_growth 2 row: 53 min measured on a day this machine ran at half speed; the A0 noise ablation
    # adds about 25 min, the Bsim optics ablation about 3 min)
    ["-m", "benchmarks.accuracy", "--train-minutes", "4", "--tta-minutes", "2", "--fit-iterations", "30"],
    [  # the occlusion-aware renderer in the fit, on B, from the sweep and from the truth (35 min)
        "-m",
        "benchmarks.accuracy",
        *("--fit-only", "--fit-rows", "layered", "oracle-layered", "--sets", "B", "--merge"),
        *("--train-minutes", "4", "--tta-minutes", "2", "--fit-iterations", "30"),
    ],
    [  # ... and on A's test split, from the sweep (32 min)
        "-m",
        "benchmarks.accuracy",
        *("--fit-only", "--fit-rows", "layered", "--sets", "A", "--merge"),
        *("--train-minutes", "4", "--tta-minutes", "2", "--fit-iterations", "30"),
    ],
    [  # the sweep re-rendering the nearest slice nearer than every focus distance, on A and B (25 min)
        "-m",
        "benchmarks.accuracy",
        *("--fit-only", "--fit-rows", "near-slice", "--sets", "A", "B", "--merge"),
        *("--train-minutes", "4", "--tta-minutes", "2", "--fit-iterations", "30"),
    ],
    [  # the layered refinement after the default fit, on A and B (40 min)
        "-m",
        "benchmarks.accuracy",
        *("--fit-only", "--fit-rows", "refine-layered", "--sets", "A", "B", "--merge"),
        *("--train-minutes", "4", "--tta-minutes", "2", "--fit-iterations", "30"),
    ],
    [  # the layered fit with hidden surfaces filled, on B, Bsim and A's test split (45 min)
        "-m",
        "benchmarks.accuracy",
        *("--fit-only", "--fit-rows", "layered-fill", "--sets", "B", "Bsim", "A", "--merge"),
        *("--train-minutes", "4", "--tta-minutes", "2", "--fit-iterations", "30"),
    ],
    ["-m", "benchmarks.accuracy_figures"],
    ["-m", "benchmarks.fit_validation", "--from-truth"],  # the AIF-prior ablation on A train
    ["-m", "benchmarks.fit_validation", "--steps"],  # the step schedule on A train
    ["-m", "benchmarks.fit_validation", "--residual-blur"],  # the sweep's residual low-pass (25 min)
    # The rows below weigh earlier defaults; each pins off what later became a default where it would
    # change the result (the sweep's residual low-pass until session 17; the near-slice sweep where
    # pinned near, until session 22, on the scenes that pin; the halo retraction, session 24), so that
    # they reproduce the README's tables.
    [  # the default fit (of session 16) without sensor noise, on A0's train split (6 min)
        "-m",
        "benchmarks.fit_validation",
        "--data",
        "data/accuracy/A0_train",
        "--variant",
        "fit (default) on A0 (A without sensor noise)",
        '{"sweep_residual_blur_px": 0.0, "retract_halos": false}',
        "--out",
        "bench_out/fit_validation_A0.json",
        "--md",
        "docs/results/fit_validation_A0.md",
    ],
    [  # the 256-px noise references with plain focus stacking (the default of session 13; 8 min)
        "-m",
        "benchmarks.fit_validation",
        "--variant",
        "fit (default, 256-px noise references)",
        '{"noise_aware_aif": false, "sweep_residual_blur_px": 0.0, "retract_halos": false}',
        "--out",
        "bench_out/fit_validation_ref256.json",
        "--md",
        "docs/results/fit_validation_ref256.md",
    ],
    [  # noise-aware focus stacking for the sweep (the default since session 14; 9 min)
        "-m",
        "benchmarks.fit_validation",
        "--variant",
        "fit (default, noise-aware focus stacking)",
        '{"sweep_residual_blur_px": 0.0, "retract_halos": false}',
        "--out",
        "bench_out/fit_validation_noise_aware.json",
        "--md",
        "docs/results/fit_validation_noise_aware.md",
    ],
    [  # widening the range where the sweep is pinned (the default since session 15; 11 min)
        "-m",
        "benchmarks.fit_validation",
        "--scenes",
        *("dfd_indoor_028", "dfd_indoor_042", "dfd_indoor_046", "dfd_indoor_059"),
        "--variant",
        "fit (default: the range widened where the sweep is pinned)",
        '{"sweep_residual_blur_px": 0.0, "near_slice_when_pinned": false, "retract_halos": false}',
        "--variant",
        "fit with the range fixed (margin 1)",
        '{"widen_margin": 0, "sweep_residual_blur_px": 0.0, "retract_halos": false}',
        "--variant",
        "fit with margin 2, fixed",
        '{"margin": 2.0, "widen_margin": 0, "sweep_residual_blur_px": 0.0, "retract_halos": false}',
        "--out",
        "bench_out/fit_validation_range.json",
        "--md",
        "docs/results/fit_validation_range.md",
    ],
    [  # the fit's depth smoothness weight, 30 and 3 against the default 10 (session 16; 18 min)
        "-m",
        "benchmarks.fit_validation",
        "--variant",
        "smooth_weight 30",
        '{"smooth_weight": 30.0, "sweep_residual_blur_px": 0.0, "retract_halos": false}',
        "--variant",
        "smooth_weight 3",
        '{"smooth_weight": 3.0, "sweep_residual_blur_px": 0.0, "retract_halos": false}',
        "--out",
        "bench_out/fit_validation_smooth.json",
        "--md",
        "docs/results/fit_validation_smooth.md",
    ],
    [  # the PSF chosen from a plain focus-stacked AIF (the default since session 18; 15 min): the six
        # train scenes where the sweep's noise-aware AIF picked the Gaussian
        "-m",
        "benchmarks.fit_validation",
        "--scenes",
        *("dfd_indoor_033", "dfd_indoor_052", "dfd_indoor_060", "dfd_indoor_067", "dfd_indoor_068"),
        "dfd_indoor_075",
        "--variant",
        "fit (default: PSF chosen from a plain focus-stacked AIF, disc here)",
        '{"retract_halos": false}',
        "--variant",
        "fit with the Gaussian PSF (the noise-aware AIF's choice here)",
        '{"psf": "gaussian", "retract_halos": false}',
        "--out",
        "bench_out/fit_validation_psf.json",
        "--md",
        "docs/results/fit_validation_psf.md",
    ],
    [  # the occlusion-aware renderer in the fit, on A's train split [2::7] (session 19; 35 min)
        "-m",
        "benchmarks.fit_validation",
        "--variant",
        "fit with the occlusion-aware layered renderer",
        '{"render_mode": "layered", "retract_halos": false}',
        "--out",
        "bench_out/fit_validation_layered.json",
        "--md",
        "docs/results/fit_validation_layered.md",
    ],
    [  # the layered refinement after the default fit, on A's train split [2::7] (session 21; 23 min)
        "-m",
        "benchmarks.fit_validation",
        *("--variant", "fit (default)", '{"retract_halos": false}'),
        *(
            "--variant",
            "fit, then refined with the layered renderer",
            '{"refine": "layered", "retract_halos": false}',
        ),
        *("--out", "bench_out/fit_validation_refine.json"),
        *("--md", "docs/results/fit_validation_refine.md"),
    ],
    [  # the near-slice sweep where the sweep is pinned near (the default since session 22), on A train's
        # four near scenes (5 min)
        "-m",
        "benchmarks.fit_validation",
        *("--scenes", "dfd_indoor_028", "dfd_indoor_042", "dfd_indoor_046", "dfd_indoor_059"),
        *("--variant", "fit without the near-slice sweep (the default before session 22)"),
        '{"near_slice_when_pinned": false, "retract_halos": false}',
        *("--variant", "fit (default: near-slice sweep where pinned near)", '{"retract_halos": false}'),
        *("--out", "bench_out/fit_validation_near_slice_pinned.json"),
        *("--md", "docs/results/fit_validation_near_slice_pinned.md"),
    ],
    [  # the near-slice sweep against the default on A train's validation scenes (10 min; "default" is
        # session 20's, without the near-slice sweep where pinned)...
        "-m",
        "benchmarks.fit_validation",
        *("--variant", "fit, sweep from the nearest slice beyond the nearest focus"),
        *('{"sweep_relative_beyond_focus": true, "retract_halos": false}', "--variant", "fit (default)"),
        '{"near_slice_when_pinned": false, "retract_halos": false}',
        *("--out", "bench_out/fit_validation_near_slice.json"),
        *("--md", "docs/results/fit_validation_near_slice.md"),
    ],
    [  # ... and on the four train scenes with true depth nearer than the working range (5 min)
        "-m",
        "benchmarks.fit_validation",
        *("--scenes", "dfd_indoor_028", "dfd_indoor_042", "dfd_indoor_046", "dfd_indoor_059"),
        *("--variant", "fit, sweep from the nearest slice beyond the nearest focus"),
        *('{"sweep_relative_beyond_focus": true, "retract_halos": false}', "--variant", "fit (default)"),
        '{"near_slice_when_pinned": false, "retract_halos": false}',
        *("--out", "bench_out/fit_validation_near_slice_beyond.json"),
        *("--md", "docs/results/fit_validation_near_slice_beyond.md"),
    ],
    [  # the halo retraction (the default since session 24) on A's train split [2::7] (15 min)
        "-m",
        "benchmarks.fit_validation",
        *("--variant", "fit without the halo retraction (the default before session 24)"),
        '{"retract_halos": false}',
        *("--variant", "fit (default: the sweep's near-surface halos retracted)", "{}"),
        *("--out", "bench_out/fit_validation_halo.json"),
        *("--md", "docs/results/fit_validation_halo.md"),
    ],
    ["-m", "benchmarks.noise_analysis"],  # where the noise costs, on two train scenes (4 min)
    ["-m", "benchmarks.edge_analysis"],  # where B's error lies, on B and Bsim (5 min)
    [
        "-m",
        "benchmarks.edge_analysis",
        "--starts",  # which part of the start limits B, both renderers, on B and Bsim (36 min)
        *("--out", "bench_out/start_ablation.json", "--md", "docs/results/start_ablation.md"),
    ],
    [
        "-m",
        "benchmarks.edge_analysis",
        "--objective",  # what the data term prefers at B's edges: truth, sweep, retracted start (5 min)
        *("--out", "bench_out/edge_objective.json", "--md", "docs/results/edge_objective.md"),
    ],
    ["-m", "benchmarks.range_coverage", "--sweep"],  # A's depth outside the working range (35 min)
    ["-m", "benchmarks.ablations"],
    ["-m", "benchmarks.holdout_real"],
    ["-m", "benchmarks.gallery"],
    ["-m", "benchmarks.update_readme"],
]


def _accuracy_data_complete() -> bool:
    """Every set of ``scripts/make_accuracy_data.py`` is rendered (A0 and Bsim were added later: older data
    lacks them; Bsim only where test data B is there to re-render)."""
    root = REPO / "data" / "accuracy"
    sets = ("A", "Aprime", "A0")
    split_sets = all((root / f"{s}_{p}").is_dir() for s in sets for p in ("train", "test"))
    bsim = (root / "Bsim").is_dir() or not ANTINOUS.is_dir()
    return (root / "manifest.json").is_file() and split_sets and bsim


def main() -> int:
    for step in STEPS:
        if step[0] == "scripts/make_accuracy_data.py" and _accuracy_data_complete():
            continue
        t0 = time.perf_counter()
        print(f"\n=== {' '.join(step)}", flush=True)
        subprocess.run([sys.executable, *step], cwd=REPO, check=True)
        print(f"=== done in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
