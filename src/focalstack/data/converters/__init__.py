"""Dataset converters: public datasets -> scene folders (the interchange format of docs/CONVENTIONS.md).

One module per dataset, each documenting its file layout, units and focus encoding:

- :mod:`.hci` -- HCI 4D light fields, refocused by synthetic aperture (box PSF, real parallax);
- :mod:`.ddff` -- DDFF-12 HDF5 (Lytro refocused stacks, disparity ground truth);
- :mod:`.defocusnet` -- DefocusNet / FoD500 (Blender renders, EXR depth);
- :mod:`.mobiledepth` -- Mobile Depth phone focal sweeps (calibrated focus, no ground truth);
- NYUv2 and DFD-indoor RGB-D data (:mod:`focalstack.data.rgbd`) become stacks by
  :func:`focalstack.data.synth.synthesize_rgbd` with the paper's protocol.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from focalstack.data.stack import FocalStack


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
