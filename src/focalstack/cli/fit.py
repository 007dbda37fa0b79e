"""``focalstack fit``: per-scene optimisation of depth and an all-in-focus image (no network)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import tyro

from focalstack.cli.predict import CameraOverride, prepare_stack
from focalstack.data.stack import FocalStack
from focalstack.inference.fit import FitConfig, fit_scene


def _is_scene(folder: Path) -> bool:
    return (folder / "scene.json").is_file() or any(folder.glob("stack_*"))


def scene_folders(path: Path) -> list[Path]:
    """``[path]`` for a scene folder, else the scene folders directly inside ``path`` (sorted)."""
    if not path.is_dir():
        raise SystemExit(f"not a folder: {path}")
    if _is_scene(path):
        return [path]
    found = sorted(p for p in path.iterdir() if p.is_dir() and _is_scene(p))
    if not found:
        raise SystemExit(f"no scene folders (stack_XX.* + scene.json) in {path}")
    return found


@dataclass
class FitCommand:
    """Fit depth and an all-in-focus image to each focal stack by re-rendering it through the lens.

    No network and no training data: every scene is optimised on its own (see focalstack.inference.fit).
    PATH is a scene folder or a folder of scene folders (outputs then go to OUT/<scene>/). A scene whose
    camera is incomplete (e.g. a phone without pixel pitch) gets a nominal camera and a fitted blur scale.
    """

    path: tyro.conf.Positional[Path]
    """Scene folder, or a folder of scene folders."""
    out: Path = Path("fits")
    """Output folder."""
    focus: tuple[float, ...] | None = None
    """Focus distances in metres, one per slice (overrides scene.json)."""
    camera: CameraOverride = field(default_factory=CameraOverride)
    max_size: int | None = None
    """Downscale so the longer side is at most this many pixels (pixel pitch scales accordingly)."""
    align: bool = False
    """Align the slices (focus breathing, hand shake) before fitting; crops to the common region."""
    fit: FitConfig = field(default_factory=FitConfig)
    device: str = "cpu"
    """Torch device, e.g. cpu or cuda."""

    def run(self) -> None:
        folders = scene_folders(self.path)
        multi = len(folders) > 1
        failed = []
        for folder in folders:
            out_dir = self.out / folder.name if multi else self.out
            try:
                seconds = self.fit_one(folder, out_dir)
            except ValueError as e:
                if not multi:
                    raise SystemExit(f"{folder.name}: {e}") from e
                print(f"{folder.name}: skipped: {e}")
                failed.append(folder.name)
                continue
            print(f"{folder.name}: wrote {out_dir}/ ({seconds:.1f} s)")
        if failed:
            raise SystemExit(f"{len(failed)} of {len(folders)} scenes failed: {failed}")

    def load(self, folder: Path) -> FocalStack:
        """The scene with the command-line focus / camera overrides and size limit applied."""
        focus = list(self.focus) if self.focus is not None else None
        return prepare_stack(FocalStack.load(folder), focus, self.camera, self.max_size, self.align)

    def fit_one(self, folder: Path, out_dir: Path) -> float:
        """Fit one scene folder and write its outputs; returns the seconds the fit took."""
        from focalstack.inference.outputs import write_prediction

        stack = self.load(folder)
        cfg = self.fit
        if stack.camera is None and not cfg.estimate_blur_scale:
            print(f"{folder.name}: camera incomplete: using a nominal camera and estimating the blur scale")
            cfg = dataclasses.replace(cfg, estimate_blur_scale=True)
        start = time.perf_counter()
        result = fit_scene(stack, cfg, device=self.device)
        seconds = time.perf_counter() - start
        meta = {
            "method": "fit",
            "seconds": seconds,
            "aligned": self.align,
            "blur_scale": result.blur_scale,
            "psf": result.psf,
            "depth_range_m": list(result.depth_range_m),
            "sweep_residual_blur_px": result.sweep_residual_blur_px,
            "sweep_relative_beyond_focus": result.sweep_relative_beyond_focus,
            "fit_camera": result.camera.to_dict(),
            "fit_config": dataclasses.asdict(cfg),
            "final_loss": result.history[-1] if result.history else None,
        }
        write_prediction(
            out_dir, stack, result.depth_m, result.aif, rerendered=result.rerendered, extra_meta=meta
        )
        return seconds
