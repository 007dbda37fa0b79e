"""How often the fit's PSF choice (``FitConfig.psf="auto"``) picks the PSF a stack was made with.

:func:`focalstack.losses.select_psf` compares a disc and a Gaussian PSF by how well each re-renders the
stack (per pixel the best depth hypothesis, median over pixels), from a focus-stacked AIF. This scores
it on stacks whose PSF is known: the procedural validation sets of ``benchmarks.fit_procedural`` (half
of their scenes drawn with each PSF) and accuracy sets A (disc, with occlusion) and A' (Gaussian); B
(synthetic-aperture refocusing: a box of 9 x 9 views, neither model) only reports what is chosen.

    python -m benchmarks.psf_choice [--seeds 777 1001 1002] [--scenes 8 12 12]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tqdm import tqdm

from benchmarks._common import REPO, machine_info, markdown_table, save
from benchmarks.accuracy import test_sets
from benchmarks.fit_procedural import add_validation_args, check_validation_args
from benchmarks.train_procedural import heldout_scenes
from focalstack.data.procedural import ProceduralConfig
from focalstack.data.stack import FocalStack
from focalstack.inference.fit import choose_psf


def rendered_with(stack: FocalStack) -> str | None:
    """The PSF a stack was synthesised with (``meta["psf"]`` or ``meta["synth"]["psf"]``), if known."""
    synth = stack.meta.get("synth")
    psf = stack.meta.get("psf") or (synth.get("psf") if isinstance(synth, dict) else None)
    return psf if psf in ("disc", "gaussian") else None


def choices(stacks: list[FocalStack], desc: str) -> list[dict]:
    """Per stack: the PSF the default fit chooses and the true one."""
    out = []
    for stack in tqdm(stacks, desc=desc, leave=False):
        chosen = choose_psf(stack)
        out.append({"scene": stack.name, "rendered_with": rendered_with(stack), "chosen": chosen})
    return out


def summary(name: str, rows: list[dict]) -> dict:
    known = [r for r in rows if r["rendered_with"] is not None]
    truth = sorted({r["rendered_with"] for r in known}) or ["unknown"]
    hits = sum(r["chosen"] == r["rendered_with"] for r in known)
    return {
        "set": name,
        "scenes": len(rows),
        "rendered with": " / ".join(truth),
        "chose disc": sum(r["chosen"] == "disc" for r in rows),
        "chose gaussian": sum(r["chosen"] == "gaussian" for r in rows),
        "correct": f"{hits} / {len(known)}" if known else "-",
        "per_scene": rows,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_validation_args(parser)
    parser.add_argument("--data", type=Path, default=REPO / "data" / "accuracy")
    parser.add_argument("--limit", type=int, default=None, help="first N test scenes of A and A'")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "bench_out" / "psf_choice.json"))
    parser.add_argument("--md", default=str(REPO / "docs" / "results" / "psf_choice.md"))
    args = parser.parse_args(argv)
    check_validation_args(parser, args)
    torch.set_num_threads(args.threads)
    sets = {
        f"procedural, seed {s}": heldout_scenes(n, ProceduralConfig(), seed=s)
        for s, n in zip(args.seeds, args.scenes)
    }
    sets.update(test_sets(args.data, args.limit, ("A", "A'", "B")))
    rows = [summary(name, choices(stacks, name)) for name, stacks in sets.items()]
    cols = ["set", "scenes", "rendered with", "chose disc", "chose gaussian", "correct"]
    note = (
        'PSF chosen by the default fit (`FitConfig.psf="auto"`, `focalstack.losses.select_psf`) per stack; '
        "'correct' counts stacks whose synthesis PSF is known."
    )
    payload = {"machine": machine_info(), "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
    save(args.out, args.md, payload, note + "\n\n" + markdown_table(rows, cols))
    return payload


if __name__ == "__main__":
    main()
