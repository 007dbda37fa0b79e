"""``focalstack synth``: render scene folders from RGB-D data, or procedural scenes.

Every scene folder is written atomically and its ``scene.json`` records every parameter used (camera,
focus distances, model, PSF, noise, seeds, source, resolution), so any scene can be reproduced.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm import tqdm

from focalstack.data.procedural import ProceduralConfig, procedural_scene
from focalstack.data.rgbd import RGBDSample
from focalstack.data.stack import FocalStack
from focalstack.data.synth import NoiseConfig, scene_seed, synthesize_rgbd
from focalstack.optics.camera import ThinLens


@dataclass
class CameraOptions:
    """Camera parameters that override (or complete) the dataset's protocol camera."""

    focal_length_m: float | None = None
    """Focal length in metres."""
    f_number: float | None = None
    """f-number N."""
    pixel_size_m: float | None = None
    """Pixel pitch in metres at the resolution the RGB-D data is read at (--scale adjusts it)."""

    def resolve(self, base: ThinLens | None, scene: str) -> ThinLens:
        """``base`` with the given fields replaced; raises ``ValueError`` when still incomplete."""
        values = base.to_dict() if base is not None else {}
        values.update({k: v for k, v in dataclasses.asdict(self).items() if v is not None})
        missing = [k for k in ("focal_length_m", "f_number", "pixel_size_m") if values.get(k) is None]
        if missing:
            flags = ", ".join("--camera." + m.replace("_", "-") for m in missing)
            raise ValueError(f"{scene}: the data has no complete camera; give {flags}")
        return ThinLens.from_dict(values)


def read_split(path: Path) -> list[str]:
    """Scene names from a split file: one per line, ``#`` comments and blank lines ignored."""
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise ValueError(f"cannot read split file {path}: {e.strerror or e}") from e
    names = [line.split("#", 1)[0].strip() for line in lines]
    names = [n for n in names if n]
    if not names:
        raise ValueError(f"split file {path} lists no scene names")
    return names


@dataclass
class SynthCommand:
    """Render focal stacks into scene folders (stack_XX.png, scene.json, aif.png, depth.npy).

    From RGB-D data: focalstack synth --source PATH --kind folder|dfd-indoor|nyu-mat --out DST
    Procedurally:    focalstack synth --procedural N --out DST
    """

    out: Path
    """Output folder; one scene folder per sample."""
    source: Path | None = None
    """RGB-D data: a folder (folder, dfd-indoor) or the .mat file (nyu-mat)."""
    kind: Literal["folder", "dfd-indoor", "nyu-mat"] = "folder"
    """Layout of --source (see focalstack.data.rgbd)."""
    procedural: int = 0
    """Number of procedural scenes to render instead of RGB-D data."""
    proc: ProceduralConfig = field(default_factory=ProceduralConfig)
    """Procedural scene ranges (procedural mode only)."""
    camera: CameraOptions = field(default_factory=CameraOptions)
    """Camera (RGB-D mode); defaults to the dataset protocol's camera."""
    focus_m: tuple[float, ...] | None = None
    """Focus distances in metres (RGB-D mode); default: the dataset protocol's."""
    model: Literal["layered", "gather", "scatter"] = "layered"
    """Forward model (RGB-D mode): occlusion-aware layers, or the per-pixel training renderer."""
    psf: Literal["gaussian", "disc"] = "disc"
    """Point-spread function (RGB-D mode)."""
    fill_hidden: bool = True
    """Layered model: show the background behind blurred foreground edges (off for speckled sensor depth)."""
    kernel_size: int | None = None
    """Window of the gather/scatter renderer (7 reproduces the paper's generator); None: automatic."""
    linear_light: bool = True
    """Blur in linear light (RGB-D mode)."""
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    """Sensor noise (RGB-D mode); none by default."""
    protocol: bool | None = None
    """Apply the dataset's paper protocol (resolution, depth clipping); default on for dfd-indoor, nyu-mat."""
    depth_scale: float | None = None
    """Metres per unit of integer depth images (kind folder), e.g. 0.001 for millimetres."""
    max_valid_depth_m: float | None = None
    """Depth beyond this many metres is invalid (e.g. 3.5 for DFD-indoor's sensor)."""
    scale: float = 1.0
    """Resize the RGB-D data by this factor after reading (the pixel pitch follows)."""
    crop_multiple: int = 16
    """Crop (top-left anchored) to multiples of this many pixels (1: no crop)."""
    seed: int = 0
    """Run seed; each scene's seed mixes it with the scene name."""
    limit: int | None = None
    """Render at most this many scenes."""
    split: Path | None = None
    """Text file of scene names to render (one per line); others are skipped."""
    bits: Literal[8, 16] = 8
    """Bits per channel of the written PNGs."""
    overwrite: bool = False
    """Replace existing scene folders."""

    def run(self) -> None:
        try:
            self.check()
            scenes = self.procedural_scenes() if self.procedural else self.rgbd_scenes()
            count = 0
            for stack in scenes:
                stack.save(self.out / stack.name, bits=self.bits, overwrite=self.overwrite)
                count += 1
        except (ValueError, FileExistsError) as e:
            raise SystemExit(f"focalstack synth: {e}") from e
        print(f"wrote {count} scene folder(s) to {self.out}")

    def check(self) -> None:
        """Reject contradictory or out-of-range options before any work."""
        if (self.source is None) == (self.procedural == 0):
            raise ValueError("give either --source PATH or --procedural N (N > 0)")
        if self.procedural < 0:
            raise ValueError(f"--procedural must be >= 0, got {self.procedural}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {self.limit}")
        if not self.scale > 0:
            raise ValueError(f"--scale must be > 0, got {self.scale}")
        if self.crop_multiple < 1:
            raise ValueError(f"--crop-multiple must be >= 1, got {self.crop_multiple}")
        if self.procedural and (
            self.scale != 1.0 or self.focus_m is not None or any(dataclasses.asdict(self.camera).values())
        ):
            raise ValueError("procedural scenes take their size, camera and focus from --proc.* options")

    def settings(self) -> dict[str, Any]:
        """The command's options (recorded in every scene.json; FocalStack.save makes them JSON)."""
        return dataclasses.asdict(self)

    def procedural_scenes(self) -> Iterator[FocalStack]:
        n = self.procedural if self.limit is None else min(self.procedural, self.limit)
        names = [f"procedural_{i:06d}" for i in range(self.procedural)]
        if self.split is not None:
            wanted = set(read_split(self.split))
            names = [name for name in names if name in wanted]
        for name in tqdm(names[:n], desc="synth", unit="scene"):
            seed = scene_seed(self.seed, name)
            stack = procedural_scene(self.proc, torch.Generator().manual_seed(seed), name=name)
            stack.meta["synth"].update(seed=self.seed, scene_seed=seed)
            stack.meta["command"] = self.settings()
            yield stack

    def rgbd_scenes(self) -> Iterator[FocalStack]:
        from focalstack.data.rgbd import count_rgbd, iter_rgbd

        wanted = read_split(self.split) if self.split is not None else None
        total = count_rgbd(self.kind, self.source)
        indices = list(range(min(total, self.limit))) if self.limit is not None and wanted is None else None
        samples = iter_rgbd(
            self.kind,
            self.source,
            depth_scale=self.depth_scale,
            indices=indices,
            protocol=self.protocol,
            max_valid_depth_m=self.max_valid_depth_m,
        )
        bar = tqdm(total=len(wanted or indices or range(total)), desc="synth", unit="scene")
        done, seen = 0, set()
        for sample in samples:
            if wanted is not None and sample.name not in wanted:
                continue
            seen.add(sample.name)
            yield self.render_rgbd(sample)
            bar.update()
            done += 1
            if self.limit is not None and done >= self.limit:
                break
        bar.close()
        missing = sorted(set(wanted or ()) - seen)
        if missing and (self.limit is None or done < self.limit):
            raise ValueError(f"split names not found in {self.source}: {missing[:10]}")

    def render_rgbd(self, sample: RGBDSample) -> FocalStack:
        """Synthesise one RGB-D sample's stack (:func:`focalstack.data.synth.synthesize_rgbd`)."""
        if self.focus_m is None and sample.focus_m is None:
            raise ValueError(f"{sample.name}: the data has no focus distances; give --focus-m")
        stack = synthesize_rgbd(
            sample,
            camera=self.camera.resolve(sample.camera, sample.name),
            focus_m=self.focus_m,
            scale=self.scale,
            crop_multiple=self.crop_multiple,
            model=self.model,
            psf=self.psf,
            fill_hidden=self.fill_hidden,
            kernel_size=self.kernel_size,
            linear_light=self.linear_light,
            noise=self.noise,
            seed=self.seed,
        )
        stack.meta["command"] = self.settings()
        return stack
