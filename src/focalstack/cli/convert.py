"""``focalstack convert KIND SRC --out DST``: public datasets -> scene folders.

Each dataset's layout, units and conventions are documented in its module:
:mod:`focalstack.data.rgbd` (nyu, dfd-indoor) and :mod:`focalstack.data.converters` (hci, ddff,
defocusnet, mobiledepth).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import tyro

from focalstack.data.converters.ddff import DDFF_BASELINE_FOCAL_M_PX
from focalstack.data.converters.mobiledepth import INCH_M

if TYPE_CHECKING:
    from focalstack.data.stack import FocalStack

Kind = Literal["nyu", "dfd-indoor", "hci", "ddff", "defocusnet", "mobiledepth"]

# Options that only some kinds use: passing them to another kind is an error, not silently ignored.
_OPTION_KINDS: dict[str, tuple[str, ...]] = {
    "model": ("nyu", "dfd-indoor"),
    "psf": ("nyu", "dfd-indoor"),
    "fill_hidden": ("nyu", "dfd-indoor"),
    "kernel_size": ("nyu", "dfd-indoor"),
    "linear_light": ("nyu", "dfd-indoor", "hci"),
    "noise_shot": ("nyu", "dfd-indoor"),
    "noise_read": ("nyu", "dfd-indoor"),
    "quantize_bits": ("nyu", "dfd-indoor"),
    "seed": ("nyu", "dfd-indoor"),
    "protocol": ("nyu", "dfd-indoor"),
    "max_valid_depth_m": ("nyu", "dfd-indoor", "defocusnet"),
    "focus": ("nyu", "dfd-indoor", "defocusnet"),
    "num_slices": ("hci", "mobiledepth"),
    "size": ("hci",),
    "focus_disparities": ("hci",),
    "split": ("ddff",),
    "baseline_focal_m_px": ("ddff",),
    "pixel_size_m": ("defocusnet",),
    "calibration": ("mobiledepth",),
    "focus_unit_m": ("mobiledepth",),
    "paper_camera": ("mobiledepth",),
}


@dataclass
class ConvertCommand:
    """Convert a public dataset into scene folders (stack_XX.png, scene.json, aif.png, depth.npy).

    SRC per KIND: nyu: nyu_depth_v2_labeled.mat; dfd-indoor: the folder with dataset.json and one
    folder per scene; hci: a scene folder or a folder of scenes; ddff: the .h5 file; defocusnet: the
    flat folder of <id>...All.tif / <id>...Dpt.exr files; mobiledepth: a scene folder (a<N>.jpg) or a
    tree of them. nyu and dfd-indoor stacks are rendered with the paper's camera and focus protocol.
    """

    kind: tyro.conf.Positional[Kind]
    """Dataset kind; nyu and dfd-indoor are rendered with the paper's camera and focus protocol."""
    src: tyro.conf.Positional[Path]
    """nyu: nyu_depth_v2_labeled.mat; dfd-indoor: folder with dataset.json + scene folders; hci: scene
    folder(s) with parameters.cfg; ddff: the .h5 file; defocusnet: folder of <id>*All.tif + <id>*Dpt.exr;
    mobiledepth: folder(s) of a<N>.jpg frames."""
    out: Path
    """Output folder; one scene folder per sample is written inside."""
    indices: tuple[int, ...] | None = None
    """0-based sample (or scene) indices to convert (default: all)."""
    limit: int | None = None
    """Convert at most this many samples (after --indices)."""
    overwrite: bool = False
    """Replace existing scene folders."""
    bits: Literal[8, 16] = 8
    """Bits per channel of the written PNGs."""

    # nyu / dfd-indoor: synthesis
    model: Literal["layered", "gather", "scatter"] = "layered"
    """Forward model of the synthesis (focalstack.data.synth)."""
    psf: Literal["disc", "gaussian"] = "disc"
    """PSF shape of the synthesis."""
    fill_hidden: bool = True
    """Layered model: show the background behind blurred foreground edges (off for speckled sensor depth)."""
    kernel_size: int | None = None
    """Window of the gather/scatter renderer (7 reproduces the paper's generator); None: automatic."""
    linear_light: bool = True
    """Blur (nyu, dfd-indoor) or refocus (hci) in linear light."""
    noise_shot: float = 0.0
    """Poisson shot-noise gain of the synthesis (0: none)."""
    noise_read: float = 0.0
    """Gaussian read-noise std of the synthesis, linear units (0: none)."""
    quantize_bits: int | None = None
    """Round synthetic slices to this many bits (with noise)."""
    seed: int = 0
    """Noise seed; each scene's seed mixes it with the scene name (as focalstack synth does)."""
    protocol: bool = True
    """Paper resolution protocol (nyu: 320x240, clip 0.1-10 m; dfd-indoor: half size, crop to x16)."""
    max_valid_depth_m: float | None = None
    """Mark depth beyond this many metres invalid (e.g. 3.5 for DFD-indoor's sensor, 3 for DefocusNet)."""
    focus: tuple[float, ...] | None = None
    """Focus distances in metres (overrides the dataset's / protocol's)."""

    # hci
    num_slices: int | None = None
    """Number of slices (hci: refocus planes, default 5; mobiledepth: frames kept, default all)."""
    size: int | None = None
    """Longer side of the hci output in pixels (area downscale, e.g. 256)."""
    focus_disparities: tuple[float, ...] | None = None
    """hci focus disparities in pixels of the views (default: 98th..2nd percentile of GT disparity)."""

    # ddff
    split: Literal["train", "val", "test"] = "train"
    """DDFF-12 split (HDF5 key suffix)."""
    baseline_focal_m_px: float = DDFF_BASELINE_FOCAL_M_PX
    """DDFF-12 baseline x focal length (m px) for disparity -> depth."""

    # defocusnet
    pixel_size_m: float | None = None
    """DefocusNet pixel pitch in metres (unpublished; completes the camera when given)."""

    # mobiledepth
    calibration: Path | None = None
    """Mobile Depth calibration file (default: calibrated.txt / focus_dpth.txt found near the frames)."""
    focus_unit_m: float = INCH_M
    """Metres per unit of the Mobile Depth calibration (default inches, as the paper's code)."""
    paper_camera: bool = True
    """Attach the camera the paper assumed for Mobile Depth (N=24, f=50 mm, p=5.6 um)."""

    def run(self) -> None:
        from focalstack.data.converters import write_scenes

        try:
            self._check_options()
            stacks, total = self._plan()
            written = write_scenes(
                stacks,
                self.out,
                total=total,
                overwrite=self.overwrite,
                bits=self.bits,
                desc=f"convert {self.kind}",
            )
        except (ValueError, FileExistsError) as e:
            raise SystemExit(f"focalstack convert: {e}") from e
        print(f"wrote {len(written)} scene folder(s) to {self.out}")

    def _check_options(self) -> None:
        defaults = {f.name: f.default for f in fields(self)}
        for name, kinds in _OPTION_KINDS.items():
            if self.kind not in kinds and getattr(self, name) != defaults[name]:
                raise ValueError(
                    f"--{name.replace('_', '-')} does not apply to {self.kind} (only {', '.join(kinds)})"
                )
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {self.limit}")

    def _selection(self, n: int) -> list[int]:
        chosen = list(range(n)) if self.indices is None else list(self.indices)
        bad = [i for i in chosen if not 0 <= i < n]
        if bad:
            raise ValueError(f"indices {bad} out of range for {n} samples")
        return chosen[: self.limit] if self.limit is not None else chosen

    def _plan(self) -> tuple[Iterator[FocalStack], int]:
        """The stacks to write (lazily) and how many."""
        if self.kind in ("nyu", "dfd-indoor"):
            return self._plan_rgbd()
        if self.kind == "hci":
            from focalstack.data.converters.hci import convert_hci_scene, find_hci_scenes

            scenes = _pick(find_hci_scenes(self.src), self._selection)
            kwargs = dict(
                num_slices=self.num_slices or 5,
                focus_disparities_px=self.focus_disparities,
                size=self.size,
                linear_light=self.linear_light,
            )
            return (convert_hci_scene(s, **kwargs) for s in scenes), len(scenes)
        if self.kind == "ddff":
            from focalstack.data.converters.ddff import count_ddff, iter_ddff

            chosen = self._selection(count_ddff(self.src, self.split))
            stacks = iter_ddff(
                self.src, split=self.split, indices=chosen, baseline_focal_m_px=self.baseline_focal_m_px
            )
            return stacks, len(chosen)
        if self.kind == "defocusnet":
            from focalstack.data.converters.defocusnet import (
                DEFOCUSNET_FOCUS_M,
                count_defocusnet,
                iter_defocusnet,
            )

            chosen = self._selection(count_defocusnet(self.src))
            stacks = iter_defocusnet(
                self.src,
                focus_m=self.focus or DEFOCUSNET_FOCUS_M,
                pixel_size_m=self.pixel_size_m,
                indices=chosen,
                max_valid_depth_m=self.max_valid_depth_m,
            )
            return stacks, len(chosen)
        from focalstack.data.converters.mobiledepth import convert_mobiledepth_scene, find_scenes

        scenes = _pick(find_scenes(self.src), self._selection)
        kwargs = dict(
            calibration=self.calibration,
            focus_unit_m=self.focus_unit_m,
            num_slices=self.num_slices,
            paper_camera=self.paper_camera,
        )
        return (convert_mobiledepth_scene(s, **kwargs) for s in scenes), len(scenes)

    def _plan_rgbd(self) -> tuple[Iterator[FocalStack], int]:
        from focalstack.data.rgbd import count_rgbd, iter_rgbd
        from focalstack.data.synth import NoiseConfig, synthesize_rgbd

        rgbd_kind = "nyu-mat" if self.kind == "nyu" else "dfd-indoor"
        chosen = self._selection(count_rgbd(rgbd_kind, self.src))
        samples = iter_rgbd(
            rgbd_kind,
            self.src,
            indices=chosen,
            protocol=self.protocol,
            max_valid_depth_m=self.max_valid_depth_m,
        )
        noise = NoiseConfig(self.noise_shot, self.noise_read, self.quantize_bits)
        options = dict(
            focus_m=self.focus,
            model=self.model,
            psf=self.psf,
            fill_hidden=self.fill_hidden,
            kernel_size=self.kernel_size,
            linear_light=self.linear_light,
            noise=noise,
            seed=self.seed,
        )
        return (synthesize_rgbd(sample, **options) for sample in samples), len(chosen)


def _pick(items: Sequence[Path], selection: Callable[[int], list[int]]) -> list[Path]:
    return [items[i] for i in selection(len(items))]
