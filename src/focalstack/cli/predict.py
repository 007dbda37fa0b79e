"""``focalstack predict``: depth and all-in-focus images for scene folders or loose image files."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import tyro
from tqdm import tqdm

from focalstack.data.stack import FocalStack
from focalstack.optics.camera import ThinLens


@dataclass
class CameraOverride:
    """Camera parameters that override (or complete) those in scene.json."""

    focal_length_m: float | None = None
    """Focal length in metres."""
    f_number: float | None = None
    """f-number N."""
    pixel_size_m: float | None = None
    """Pixel pitch in metres at the resolution of the input files."""

    def apply(self, stack: FocalStack) -> FocalStack:
        given = {k: v for k, v in vars(self).items() if v is not None}
        if not given:
            return stack
        merged = {**(stack.meta.get("camera") or {}), **(stack.camera.to_dict() if stack.camera else {})}
        merged.update(given)
        complete = all(merged.get(k) is not None for k in ("focal_length_m", "f_number", "pixel_size_m"))
        # A new stack: the caller's stack (and its meta dict) stay untouched.
        return dataclasses.replace(
            stack,
            camera=ThinLens.from_dict(merged) if complete else stack.camera,
            meta={**stack.meta, "camera": merged},
        )


def prepare_stack(
    stack: FocalStack,
    focus: list[float] | None,
    camera: CameraOverride,
    max_size: int | None,
    align: bool,
) -> FocalStack:
    """Apply the command-line focus distances / camera overrides, the size limit and alignment."""
    if focus is not None:
        stack = dataclasses.replace(
            stack,
            focus_m=torch.tensor(focus, dtype=torch.float64),
            meta={**stack.meta, "focus_source": "command line"},
        )
    stack = camera.apply(stack)
    if max_size is not None and max(stack.size) > max_size:
        stack = stack.resized(max_size / max(stack.size))
    if align:
        from focalstack.data.align import align_stack

        stack = align_stack(stack).stack
    return stack


@dataclass
class PredictCommand:
    """Predict depth and an all-in-focus image from focal stacks.

    PATH is a scene folder (stack_XX.* + scene.json), a folder of scene folders (outputs go to
    OUT/<scene>/), or image files in focus order together with --focus or --focus-file.
    """

    path: tyro.conf.Positional[tuple[Path, ...]]
    """Scene folder, folder of scene folders, or image files."""
    out: Path = Path("predictions")
    """Output folder."""
    method: Literal["network", "dff"] = "network"
    """network: the trained model; dff: classical depth from focus + focus stacking."""
    checkpoint: Path | None = None
    """Model weights (default: the weights shipped with focalstack)."""
    focus: tuple[float, ...] | None = None
    """Focus distances in metres, one per image (for loose image files, or to override scene.json)."""
    focus_file: Path | None = None
    """Text file with the focus distances in metres."""
    camera: CameraOverride = field(default_factory=CameraOverride)
    align: bool = False
    """Align the slices (focus breathing, hand shake) before predicting; crops to the common region."""
    max_size: int | None = None
    """Downscale so the longer side is at most this many pixels (pixel pitch scales accordingly)."""
    tile: int = 512
    """Tile size in pixels for large images (bounded memory)."""
    overlap: int = 64
    """Overlap between tiles in pixels."""
    device: str = "cpu"
    """Torch device, e.g. cpu or cuda."""

    def run(self) -> None:
        stacks = list(self.iter_stacks())
        if not stacks:
            raise SystemExit(f"no focal stacks found in {[str(p) for p in self.path]}")
        multi = len(stacks) > 1
        for name, load in tqdm(stacks, desc="scenes", disable=not multi):
            out_dir = self.out / name if multi else self.out
            info = self.predict_one(load(), out_dir)
            units = info["depth_units"]
            print(f"{name}: wrote {out_dir}/ (depth in {units}, {info['seconds']:.2f} s)")

    def iter_stacks(self):
        """Yield (name, loader) pairs for every stack the arguments name."""
        focus = self.read_focus()
        first = self.path[0]
        if len(self.path) == 1 and first.is_dir():
            if (first / "scene.json").is_file() or any(first.glob("stack_*")):
                yield first.name, lambda: self.prepare(FocalStack.load(first), focus)
                return
            for sub in sorted(p for p in first.iterdir() if p.is_dir()):
                if (sub / "scene.json").is_file():
                    yield sub.name, lambda sub=sub: self.prepare(FocalStack.load(sub), focus)
            return
        missing = [str(p) for p in self.path if not p.is_file()]
        if missing:
            raise SystemExit(f"not a file or scene folder: {missing}")
        yield first.stem, lambda: self.prepare(FocalStack.from_files(list(self.path), focus), None)

    def read_focus(self) -> list[float] | None:
        if self.focus is not None and self.focus_file is not None:
            raise SystemExit("give either --focus or --focus-file, not both")
        if self.focus_file is not None:
            from focalstack.data.stack import read_focus_file

            return [float(f) for f in read_focus_file(self.focus_file)]
        return list(self.focus) if self.focus is not None else None

    def prepare(self, stack: FocalStack, focus: list[float] | None) -> FocalStack:
        return prepare_stack(stack, focus, self.camera, self.max_size, self.align)

    def predict_one(self, stack: FocalStack, out_dir: Path) -> dict:
        from focalstack.inference.outputs import write_prediction

        start = time.perf_counter()
        if self.method == "dff":
            depth, aif, units = self.run_dff(stack)
        else:
            from focalstack.inference.predict import predict_full

            p = predict_full(
                stack,
                checkpoint=self.checkpoint,
                device=self.device,
                tile=self.tile,
                overlap=self.overlap,
                progress=True,
            )
            depth, aif, units = p.depth, p.aif, p.depth_units
        seconds = time.perf_counter() - start
        meta = {"method": self.method, "seconds": seconds, "aligned": self.align}
        if units == "slices":
            meta["note"] = (
                "focus distances unknown: depth is a slice coordinate (0 = first slice), not metres"
            )
        if stack.camera is None:
            meta["recon"] = "skipped: camera incomplete (need focal_length_m, f_number, pixel_size_m)"
        return write_prediction(out_dir, stack, depth, aif, depth_units=units, extra_meta=meta)

    @staticmethod
    def run_dff(stack: FocalStack) -> tuple[torch.Tensor, torch.Tensor, str]:
        from focalstack.inference import baselines

        aif = baselines.focus_stack_aif(stack)
        if stack.focus_m is None:
            return baselines.dff_slice_index(stack), aif, "slices"
        return baselines.dff_depth(stack), aif, "m"
