"""Render the accuracy-protocol test data from DFD-indoor into scene folders.

Sets (written under ``--out``, default ``data/accuracy/``, which is not committed):

- ``A_train/``, ``A_test/`` (test data A): the paper's DSLR camera and focus distances (DFD-indoor
  protocol of :mod:`focalstack.data.rgbd`: f = 17 mm, N = 1.2, p = 12 um at 320 x 208, focus 1, 1.5,
  2.5, 4, 6 m), occlusion-aware layered model, disc PSF in linear light, sensor noise (shot gain
  5e-4, read noise 0.002, linear units), 8-bit. ``fill_hidden`` is off: the Kinect depth's speckled
  object borders would otherwise turn into blotches.
- ``Aprime_train/``, ``Aprime_test/`` (A'): the same scenes through the paper's own model: per-pixel
  scatter, Gaussian PSF, 7 x 7 kernel, blur of the sRGB values, no noise, 8-bit.
- ``A0_train/``, ``A0_test/`` (A0, an ablation, not a test set of the issue): A without its sensor noise
  (still 8-bit), to measure what the noise costs.
- ``Bsim/antinous_stack`` (Bsim, an ablation): test data B's ground-truth AIF and depth re-rendered with
  B's camera and focus distances through focalstack's own model (layered, disc PSF, linear light, 8-bit,
  no noise), to tell what B's synthetic-aperture optics cost from what the scene itself costs.

Scenes follow the committed split files ``benchmarks/splits/dfd_indoor_{train,test}.txt``. Every stack
is rendered by :func:`focalstack.data.synth.synthesize_rgbd` (the path of ``focalstack synth`` and
``focalstack convert dfd-indoor``) with the fixed run seed ``SEED``; scene i's noise seed depends only
on ``SEED`` and its name, so any subset reproduces the same files.

Usage: ``.venv/bin/python scripts/make_accuracy_data.py [--source DIR] [--out DIR] [--overwrite]``
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from focalstack.cli.synth import read_split
from focalstack.data.rgbd import count_rgbd, iter_rgbd
from focalstack.data.stack import FocalStack
from focalstack.data.synth import NoiseConfig, synthesize_rgbd, synthesize_stack
from focalstack.utils.io import write_json

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "rgbd" / "dfd_indoor_train"
SPLITS = REPO / "benchmarks" / "splits"
SEED = 0
SETS: dict[str, dict[str, Any]] = {
    "A": dict(
        model="layered",
        psf="disc",
        fill_hidden=False,
        linear_light=True,
        noise=NoiseConfig(shot=5e-4, read=2e-3, quantize_bits=8),
    ),
    "Aprime": dict(model="scatter", psf="gaussian", kernel_size=7, linear_light=False, noise=None),
}
SETS["A0"] = {**SETS["A"], "noise": NoiseConfig(quantize_bits=8)}
#: Test data B, and how Bsim re-renders it (its depth is clean: hidden layers may be filled in).
ANTINOUS = REPO.parent / "shared" / "data" / "lightfield" / "antinous_stack"
BSIM: dict[str, Any] = dict(
    model="layered", psf="disc", linear_light=True, noise=NoiseConfig(quantize_bits=8)
)


def render_bsim(source: Path, out: Path, overwrite: bool) -> None:
    """Write Bsim: ``source``'s true AIF and depth through :func:`synthesize_stack` with ``BSIM``."""
    b = FocalStack.load(source)
    if b.aif is None or b.depth_m is None or b.camera is None:
        raise SystemExit(f"{source} needs an AIF, a depth map and a camera to be re-rendered")
    images = synthesize_stack(b.aif, b.depth_m, b.camera, b.focus_m, **BSIM)
    psf = "disc, focalstack layered renderer, linear light, 8-bit, no noise (Bsim)"
    stack = dataclasses.replace(b, images=images, meta={**b.meta, "psf": psf, "accuracy_set": "Bsim"})
    stack.save(out / "Bsim" / b.name, overwrite=overwrite)


def _splits(folder: Path) -> dict[str, str]:
    """Scene name -> ``"train"`` or ``"test"``, from the committed split files."""
    train, test = (read_split(folder / f"dfd_indoor_{s}.txt") for s in ("train", "test"))
    both = set(train) & set(test)
    if both:
        raise SystemExit(f"split files overlap: {sorted(both)}")
    return {**dict.fromkeys(train, "train"), **dict.fromkeys(test, "test")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="DFD-indoor folder (dataset.json)")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "accuracy", help="output root")
    parser.add_argument("--splits", type=Path, default=SPLITS, help="folder of the split files")
    parser.add_argument("--overwrite", action="store_true", help="replace existing scene folders")
    args = parser.parse_args()

    start = time.perf_counter()
    split_of = _splits(args.splits)
    samples = iter_rgbd("dfd-indoor", args.source)  # the paper protocol: half size, crop to x16
    seen: dict[str, int] = {}
    rendered: set[str] = set()
    try:
        bar = tqdm(samples, total=count_rgbd("dfd-indoor", args.source), desc="accuracy data", unit="scene")
        for sample in bar:
            split = split_of.get(sample.name)
            if split is None:
                continue
            rendered.add(sample.name)
            for set_name, options in SETS.items():
                folder = f"{set_name}_{split}"
                stack = synthesize_rgbd(sample, seed=SEED, **options)
                stack.meta["accuracy_set"] = folder
                stack.save(args.out / folder / sample.name, overwrite=args.overwrite)
                seen[folder] = seen.get(folder, 0) + 1
        if ANTINOUS.is_dir():
            render_bsim(ANTINOUS, args.out, args.overwrite)
            seen["Bsim"] = 1
    except (ValueError, FileExistsError) as e:
        raise SystemExit(f"make_accuracy_data: {e}") from e
    missing = sorted(set(split_of) - rendered)
    if missing:
        raise SystemExit(f"split names not found in {args.source}: {missing}")
    seconds = time.perf_counter() - start
    write_json(
        args.out / "manifest.json",
        {
            "source": str(args.source),
            "splits": {s: str(args.splits / f"dfd_indoor_{s}.txt") for s in ("train", "test")},
            "seed": SEED,
            "sets": {
                name: {k: dataclasses.asdict(v) if isinstance(v, NoiseConfig) else v for k, v in opts.items()}
                for name, opts in {**SETS, "Bsim": BSIM}.items()
            },
            "scenes": seen,
            "seconds": seconds,
            "made_by": "scripts/make_accuracy_data.py",
        },
    )
    print(f"wrote {', '.join(f'{k}: {v}' for k, v in sorted(seen.items()))} scenes to {args.out}")
    print(f"took {seconds:.1f} s")


if __name__ == "__main__":
    main()
