"""Dataset converters: public datasets -> scene folders (the interchange format of docs/CONVENTIONS.md).

One module per dataset, each documenting its file layout, units and focus encoding:

- :mod:`.hci` -- HCI 4D light fields, refocused by synthetic aperture (box PSF, real parallax);
- :mod:`.ddff` -- DDFF-12 HDF5 (Lytro refocused stacks, disparity ground truth);
- :mod:`.defocusnet` -- DefocusNet / FoD500 (Blender renders, EXR depth);
- :mod:`.mobiledepth` -- Mobile Depth phone focal sweeps (calibrated focus, no ground truth);
- NYUv2 and DFD-indoor RGB-D data (:mod:`focalstack.data.rgbd`) become stacks by
  :func:`synthesize_rgbd` with the paper's protocol.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from focalstack.data.rgbd import RGBDSample, fill_depth_holes
from focalstack.data.stack import FocalStack


def synthesize_rgbd(
    samples: Iterable[RGBDSample],
    *,
    model: str = "layered",
    psf: str = "disc",
    linear_light: bool = True,
    noise: Any = None,
    seed: int = 0,
) -> Iterator[FocalStack]:
    """Render a focal stack per RGB-D sample with its camera and focus distances.

    Depth holes are filled (:func:`~focalstack.data.rgbd.fill_depth_holes`) for rendering only; the
    stack's ground-truth depth keeps 0 = invalid and its AIF is the sample's RGB.

    Args:
        samples: RGB-D samples with ``camera`` and ``focus_m`` set.
        model, psf, linear_light, noise: passed to :func:`focalstack.data.synth.synthesize_stack`.
        seed: noise seed; sample i uses ``seed + i`` so each stack is reproducible on its own.

    Yields:
        :class:`FocalStack` per sample.

    Raises:
        ValueError: a sample without camera or focus distances.
    """
    from focalstack.data.synth import synthesize_stack  # heavy; only the RGB-D kinds need it

    for i, sample in enumerate(samples):
        if sample.camera is None or sample.focus_m is None:
            raise ValueError(f"sample {sample.name!r} needs a camera and focus distances to be rendered")
        generator = torch.Generator().manual_seed(seed + i) if noise is not None else None
        images = synthesize_stack(
            sample.rgb,
            fill_depth_holes(sample.depth_m),
            sample.camera,
            sample.focus_m,
            model=model,
            psf=psf,
            linear_light=linear_light,
            noise=noise,
            generator=generator,
        )
        meta = {
            **sample.meta,
            "synthesis": {
                "model": model,
                "psf": psf,
                "linear_light": linear_light,
                "noise": noise,
                "seed": seed + i,
            },
        }
        yield FocalStack(images, sample.focus_m, sample.camera, sample.depth_m, sample.rgb, sample.name, meta)


def write_scenes(
    stacks: Iterable[FocalStack],
    out_dir: str | os.PathLike[str],
    *,
    total: int | None = None,
    overwrite: bool = False,
    bits: int = 8,
    desc: str = "convert",
) -> list[Path]:
    """Save each stack as ``out_dir/<stack.name>`` (atomic per scene), with a progress bar.

    Raises:
        FileExistsError: a scene folder exists and ``overwrite`` is False.
        ValueError: two stacks with the same name.
    """
    out_dir = Path(out_dir)
    written: list[Path] = []
    for stack in tqdm(stacks, total=total, desc=desc, unit="scene"):
        target = out_dir / stack.name
        if target in written:
            raise ValueError(f"two scenes are named {stack.name!r}")
        written.append(stack.save(target, bits=bits, overwrite=overwrite))
    return written
