"""Training datasets: scene folders on disk and procedural scenes generated on the fly.

Every item follows the batch contract of docs/CONVENTIONS.md: ``{"inputs": {...}, "targets": {...}}``.
Augmentation changes nothing physical: a crop keeps the pixel pitch (a resize would scale it), flips
keep every distance, and a random subset of slices keeps each slice's own focus distance. Slices stay
in focus order (the contract asks for monotonic focus), in a random direction.

Every item also carries ``inputs["scene_index"]``: the index of its scene in the dataset
(:class:`SceneFolderDataset` order; ``scene_names`` names them), or -1 for items that are not a persistent
scene (procedural items, which are fresh scenes with known cameras). The trainer uses it to pick per-scene
parameters such as the blur scales of ``data.estimate_blur_scale`` and strips it before the losses.

With ``estimate_blur_scale``, scenes with focus distances but an incomplete camera are accepted: the
camera is completed with the nominal lens of :func:`focalstack.optics.nominal.complete_camera` (the one
``focalstack fit`` uses), and training estimates one blur-scale factor per scene.

Randomness never comes from global RNG state: each item draws from a generator seeded by
``(seed, epoch, index)``, so an item is the same in any worker, on any rank and after a resume. Items
are addressed by an int or by a ``(index, epoch, num_slices)`` key; :class:`StackBatchSampler` yields
such keys with one slice count per batch, so batches with a random S still collate.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler, Sampler

from focalstack.data.normalize import working_range_m
from focalstack.data.procedural import ProceduralConfig, procedural_scene
from focalstack.data.stack import FocalStack
from focalstack.optics.camera import ThinLens
from focalstack.optics.nominal import NOMINAL_SPAN_SIGMA_PX, complete_camera

#: (index, epoch, num_slices) -- how the batch sampler addresses an item.
SampleKey = tuple[int, int, int]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
#: How to make training accept scenes whose camera is incomplete (quoted in error messages).
ESTIMATE_HINT = (
    "enable data.estimate_blur_scale (`--estimate-blur-scale True`) to complete the camera nominally and "
    "estimate one blur-scale factor per scene"
)


def item_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers such as ``(seed, epoch, index)``."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


def _randint(high: int, gen: torch.Generator) -> int:
    """Uniform int in [0, high)."""
    return int(torch.randint(high, (1,), generator=gen))


def _coin(gen: torch.Generator) -> bool:
    return bool(torch.rand((), generator=gen) < 0.5)


def _crop_size(crop: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if crop is None:
        return None
    h, w = (crop, crop) if isinstance(crop, int) else crop
    if h < 1 or w < 1:
        raise ValueError(f"crop must be positive, got {crop}")
    return int(h), int(w)


def scene_depth_range_m(stack: FocalStack, margin: float = 1.0) -> torch.Tensor:
    """(2,) ``(near, far)`` metres: the working range of all of the scene's focus distances.

    Every slice subset of a scene shares this one normalisation. A ``depth_range_m`` in scene.json (e.g.
    the ground-truth range a converter records) is deliberately not used: training, prediction and
    fitting must see the same normalisation, and it must not carry ground truth.
    """
    return working_range_m(stack.focus_m.to(torch.float64)[None], margin)[0]


def _pick_slices(
    num_total: int, num_slices: int, focus_m: torch.Tensor, gen: torch.Generator | None
) -> torch.Tensor:
    """Indices of ``num_slices`` slices in diopter order; random subset and direction when ``gen``."""
    if gen is None:  # deterministic: evenly spaced subset, near to far
        chosen = torch.linspace(0, num_total - 1, num_slices).round().long()
    else:
        chosen = torch.randperm(num_total, generator=gen)[:num_slices]
    chosen = chosen[torch.argsort(focus_m[chosen])]
    if gen is not None and _coin(gen):
        chosen = chosen.flip(0)
    return chosen


def make_item(
    stack: FocalStack,
    *,
    crop: int | tuple[int, int] | None,
    num_slices: int | None,
    gen: torch.Generator | None,
    flip: bool = True,
    range_margin: float = 1.0,
    scene_index: int = -1,
) -> dict[str, dict[str, torch.Tensor]]:
    """Turn one scene into a training item (batch contract, without the batch dimension).

    Args:
        stack: the scene; needs focus distances and a complete camera (complete an incomplete one with
            :func:`~focalstack.optics.nominal.complete_camera` first when estimating blur scales).
        crop: (h, w) or square size in pixels; None keeps the full image.
        num_slices: slices per item (<= the scene's); None keeps all.
        gen: generator for the random crop / flips / slice subset; None gives a deterministic centre
            crop, no flips and evenly spaced slices (validation).
        flip: allow random horizontal and vertical flips (only with ``gen``).
        range_margin: working-range margin (mean slice spacings around the focus range).
        scene_index: index of the scene in its dataset, or -1 when it is not a persistent scene.

    Returns:
        ``{"inputs": {"stack" (S, 3, h, w), "focus_m" (S,), "focal_length_m" (), "f_number" (),
        "pixel_size_m" (), "depth_range_m" (2,), "scene_index" ()}, "targets": {"depth_m" (1, h, w),
        "aif" (3, h, w), "has_depth" (), "has_aif" ()}}``, float32 (int64 for ``scene_index``, bool for
        the flags).
    """
    if stack.focus_m is None:
        raise ValueError(f"scene {stack.name!r} has no focus distances; training needs them")
    if stack.camera is None:
        raise ValueError(
            f"scene {stack.name!r} has no complete camera (focal length, f-number, pixel pitch); give the "
            f"missing values in scene.json or {ESTIMATE_HINT}"
        )
    S, _, H, W = stack.images.shape
    n = S if num_slices is None else num_slices
    if not 2 <= n <= S:
        raise ValueError(f"scene {stack.name!r} has {S} slices; cannot draw {n} (need 2 <= n <= {S})")
    size = _crop_size(crop) or (H, W)
    if size[0] > H or size[1] > W:
        raise ValueError(f"scene {stack.name!r} is {H}x{W} px, smaller than the crop {size[0]}x{size[1]}")

    if gen is None:
        y0, x0 = (H - size[0]) // 2, (W - size[1]) // 2
    else:
        y0, x0 = _randint(H - size[0] + 1, gen), _randint(W - size[1] + 1, gen)
    flips = [d for d in (-1, -2) if gen is not None and flip and _coin(gen)]

    def view(x: torch.Tensor) -> torch.Tensor:
        x = x[..., y0 : y0 + size[0], x0 : x0 + size[1]]
        return x.flip(flips) if flips else x

    focus = stack.focus_m.to(torch.float64)
    chosen = _pick_slices(S, n, focus, gen)
    depth = stack.depth_m
    aif = stack.aif
    depth_t = torch.zeros(1, *size) if depth is None else view(depth.float()[None])
    cam: ThinLens = stack.camera
    return {
        "inputs": {
            "stack": view(stack.images[chosen].float()).contiguous(),
            "focus_m": focus[chosen].float(),
            "focal_length_m": torch.tensor(cam.focal_length_m, dtype=torch.float32),
            "f_number": torch.tensor(cam.f_number, dtype=torch.float32),
            "pixel_size_m": torch.tensor(cam.pixel_size_m, dtype=torch.float32),
            "depth_range_m": scene_depth_range_m(stack, range_margin).float(),
            "scene_index": torch.tensor(scene_index, dtype=torch.int64),
        },
        "targets": {
            "depth_m": depth_t.contiguous(),
            "aif": torch.zeros(3, *size) if aif is None else view(aif.float()).contiguous(),
            "has_depth": torch.tensor(depth is not None),
            "has_aif": torch.tensor(aif is not None),
        },
    }


def _unpack(key: int | SampleKey, epoch: int, num_slices: int | None) -> SampleKey:
    if isinstance(key, (tuple, list)):
        index, epoch, num_slices = (int(k) for k in key)
        return index, epoch, num_slices
    return int(key), epoch, num_slices


class _StackDataset(Dataset):
    """Shared item logic: per-item generator, crop, flips and slice subset."""

    def __init__(
        self,
        crop: int | tuple[int, int] | None,
        num_slices: int | None,
        *,
        seed: int,
        augment: bool,
        flip: bool,
        range_margin: float,
    ) -> None:
        if num_slices is not None and num_slices < 2:
            raise ValueError(f"num_slices must be >= 2 (a focal stack), got {num_slices}")
        self.crop = _crop_size(crop)
        self.num_slices = num_slices
        self.seed = seed
        self.augment = augment
        self.flip = flip
        self.range_margin = range_margin
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for plain int indices (keys from :class:`StackBatchSampler` carry their own)."""
        self.epoch = epoch

    def load_scene(self, index: int, epoch: int, gen: torch.Generator) -> FocalStack:
        raise NotImplementedError

    def scene_index(self, index: int) -> int:
        """``inputs["scene_index"]`` of item ``index``: -1 unless the dataset has persistent scenes."""
        return -1

    def __getitem__(self, key: int | SampleKey) -> dict[str, dict[str, torch.Tensor]]:
        index, epoch, num_slices = _unpack(key, self.epoch, self.num_slices)
        if not self.augment:  # held-out items must not change with the epoch
            epoch = 0
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} scenes")
        gen = torch.Generator().manual_seed(item_seed(self.seed, epoch, index))
        stack = self.load_scene(index, epoch, gen)
        return make_item(
            stack,
            crop=self.crop,
            num_slices=num_slices or None,
            gen=gen if self.augment else None,
            flip=self.flip,
            range_margin=self.range_margin,
            scene_index=self.scene_index(index),
        )


def find_scene_folders(root: str | Path) -> list[Path]:
    """Scene folders (folders holding a ``scene.json``) at or below ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data root {root} is not a folder")

    def hidden(p: Path) -> bool:  # e.g. a scene folder still being written atomically
        return any(part.startswith(".") for part in p.relative_to(root).parts)

    # os.walk follows symlinked scene folders (Path.rglob does not before Python 3.13).
    found = sorted(
        Path(d)
        for d, _, files in os.walk(root, followlinks=True)
        if "scene.json" in files and not hidden(Path(d))
    )
    if not found:
        raise ValueError(f"no scene folders (folders with a scene.json) under {root}")
    return found


def _stack_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("stack_*") if p.suffix.lower() in _IMAGE_SUFFIXES)


def check_scene_folder(
    folder: Path,
    num_slices: int | None,
    crop: tuple[int, int] | None,
    *,
    estimate_blur_scale: bool = False,
    nominal_span_sigma_px: float = NOMINAL_SPAN_SIGMA_PX,
) -> str | None:
    """Why a scene folder cannot be used for training, or None when it can (reads only metadata).

    Args:
        folder: the scene folder.
        num_slices: slices each item needs (None: any).
        crop: (h, w) crop in pixels (None: any size).
        estimate_blur_scale: accept an incomplete camera that
            :func:`~focalstack.optics.nominal.complete_camera` can complete.
        nominal_span_sigma_px: blur std (pixels) of that nominal completion.
    """
    try:
        meta = json.loads((folder / "scene.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        return f"unreadable scene.json ({err})"
    files = _stack_files(folder)
    focus = meta.get("focus_distances_m")
    if not focus:
        return "no focus distances (scene.json focus_distances_m is missing or null)"
    if len(focus) != len(files):
        return f"{len(focus)} focus distances but {len(files)} stack_XX images"
    try:
        ThinLens.from_dict(meta.get("camera") or {})
    except ValueError as err:
        if not estimate_blur_scale:
            return f"incomplete camera: {err}; {ESTIMATE_HINT}"
        try:
            complete_camera(meta.get("camera"), focus, nominal_span_sigma_px)
        except (TypeError, ValueError) as err2:
            return f"incomplete camera that cannot be completed nominally: {err2}"
    if num_slices is not None and len(files) < num_slices:
        return f"only {len(files)} slices, fewer than num_slices={num_slices}"
    if crop is not None:
        with Image.open(files[0]) as im:
            w, h = im.size
        if h < crop[0] or w < crop[1]:
            return f"{h}x{w} px, smaller than the crop {crop[0]}x{crop[1]}"
    return None


class SceneFolderDataset(_StackDataset):
    """Every scene folder below ``root`` (the interchange format; e.g. ``focalstack synth`` output).

    Each scene uses its own focus distances and camera; its depth range is the working range of its
    focus distances (:func:`scene_depth_range_m`). Items carry
    ``inputs["scene_index"]``, the scene's position in ``scenes`` / ``scene_names``.

    Args:
        root: a folder of scene folders (searched recursively) or a single scene folder.
        crop: random crop size in pixels (square int or (h, w)); None keeps full images (then all
            scenes in a batch must share a size).
        num_slices: slices drawn per item (random subset); None keeps all of a scene's slices.
        seed: base seed; an item's randomness depends only on (seed, epoch, index).
        augment: random crops, flips and slice subsets; False gives a deterministic centre crop and
            evenly spaced slices (validation).
        flip: allow random flips when augmenting.
        range_margin: working-range margin (mean slice spacings around the focus range).
        estimate_blur_scale: accept scenes whose camera is incomplete (unknown pixel pitch, f-number
            and/or focal length) and complete it with
            :func:`~focalstack.optics.nominal.complete_camera`; the trainer then estimates one blur-scale
            factor per scene. Off: such scenes are rejected.
        nominal_span_sigma_px: blur std (pixels) of the nominal completion (as ``FitConfig``).

    Attributes:
        scenes: the scene folders, sorted.
        scene_names: their paths relative to ``root`` (POSIX; the folder name when ``root`` is itself a
            scene), unique keys for per-scene parameters.

    Raises:
        ValueError: no scene folder found, or scenes without focus distances / a complete camera (unless
            ``estimate_blur_scale``) / enough slices / enough pixels (every offending scene is named).
    """

    def __init__(
        self,
        root: str | Path,
        crop: int | tuple[int, int] | None = 128,
        num_slices: int | None = 5,
        *,
        seed: int = 0,
        augment: bool = True,
        flip: bool = True,
        range_margin: float = 1.0,
        estimate_blur_scale: bool = False,
        nominal_span_sigma_px: float = NOMINAL_SPAN_SIGMA_PX,
    ) -> None:
        super().__init__(crop, num_slices, seed=seed, augment=augment, flip=flip, range_margin=range_margin)
        self.root = Path(root)
        self.estimate_blur_scale = estimate_blur_scale
        self.nominal_span_sigma_px = nominal_span_sigma_px
        self.scenes = find_scene_folders(self.root)
        self.scene_names = [
            p.name if p == self.root else p.relative_to(self.root).as_posix() for p in self.scenes
        ]
        check = {"estimate_blur_scale": estimate_blur_scale, "nominal_span_sigma_px": nominal_span_sigma_px}
        problems = [(p, check_scene_folder(p, num_slices, self.crop, **check)) for p in self.scenes]
        problems = [(p, why) for p, why in problems if why is not None]
        if problems:
            lines = "\n".join(f"  - {p}: {why}" for p, why in problems)
            raise ValueError(f"{len(problems)} scene folder(s) cannot be used for training:\n{lines}")

    def __len__(self) -> int:
        return len(self.scenes)

    def load_scene(self, index: int, epoch: int, gen: torch.Generator) -> FocalStack:
        stack = FocalStack.load(self.scenes[index])
        if stack.camera is None and self.estimate_blur_scale and stack.focus_m is not None:
            known = stack.meta.get("camera")
            stack.camera = complete_camera(known, stack.focus_m, self.nominal_span_sigma_px)
        return stack

    def scene_index(self, index: int) -> int:
        return index


class ProceduralDataset(_StackDataset):
    """Procedural scenes (:func:`~focalstack.data.procedural.procedural_scene`) made on the fly.

    Item ``index`` of ``epoch`` is a pure function of ``(seed, epoch, index)``; a validation set is
    one with ``augment=False``, which also fixes (and caches) the scenes across epochs. Making a
    128^2 scene costs about as much as a training step on a CPU, so ``pool`` can bound that cost:
    items then re-augment scenes from a fixed pool, each made once per worker process.

    Args:
        cfg: procedural scene settings (size, camera, focus distances, ...).
        length: items per epoch.
        seed: base seed.
        crop, num_slices, augment, flip, range_margin: as for :class:`SceneFolderDataset`.
        pool: number of distinct scenes to cycle through (kept in memory); 0 makes a new scene for
            every item.
    """

    def __init__(
        self,
        cfg: ProceduralConfig,
        length: int,
        seed: int = 0,
        *,
        crop: int | tuple[int, int] | None = None,
        num_slices: int | None = None,
        augment: bool = True,
        flip: bool = True,
        range_margin: float = 1.0,
        pool: int = 0,
    ) -> None:
        super().__init__(crop, num_slices, seed=seed, augment=augment, flip=flip, range_margin=range_margin)
        if length < 1 or pool < 0:
            raise ValueError(f"need length >= 1 and pool >= 0, got length={length}, pool={pool}")
        self.cfg = cfg
        self.length = length
        self.pool = pool
        self._cache: dict[int, FocalStack] = {}

    def __len__(self) -> int:
        return self.length

    def load_scene(self, index: int, epoch: int, gen: torch.Generator) -> FocalStack:
        if self.augment and not self.pool:
            return procedural_scene(self.cfg, gen)
        member = (epoch * self.length + index) % self.pool if self.pool else index
        if member not in self._cache:
            # Two seed words (not three) keep pool scenes apart from any (seed, epoch, index) item.
            scene_gen = torch.Generator().manual_seed(item_seed(self.seed, member))
            self._cache[member] = procedural_scene(self.cfg, scene_gen)
        return self._cache[member]


class StackBatchSampler(Sampler[list[SampleKey]]):
    """Shuffled, rank-sharded batches of ``(index, epoch, num_slices)`` keys.

    Wraps a :class:`~torch.utils.data.DistributedSampler` (one replica when not distributed, so both
    paths run the same code). Each batch has one slice count, drawn from
    ``[min_slices, num_slices]`` by a generator seeded with ``(seed, epoch, batch)``.

    Args:
        dataset: the dataset (only its length is used).
        batch_size: items per batch on this rank.
        num_slices: slices per item (the maximum when ``min_slices`` is set).
        min_slices: smallest random slice count per batch; None = always ``num_slices``.
        shuffle: shuffle the order each epoch (seeded with ``seed + epoch``).
        seed: base seed.
        rank, world_size: this process's shard.
        drop_last: drop the incomplete last batch (training).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        num_slices: int | None,
        min_slices: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if min_slices is not None and (num_slices is None or not 2 <= min_slices <= num_slices):
            raise ValueError(f"need 2 <= min_slices <= num_slices, got {min_slices} and {num_slices}")
        self.sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        self.batch_size = batch_size
        self.num_slices = num_slices
        self.min_slices = min_slices
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self.start_batch = 0
        if len(self) == 0:
            raise ValueError(
                f"{len(dataset)} items give no full batch of {batch_size} on each of {world_size} rank(s)"
            )

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch and skip its first ``start_batch`` batches (resuming mid-epoch)."""
        self.epoch = epoch
        self.start_batch = start_batch
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _slices(self, batch: int) -> int:
        if self.min_slices is None:
            return 0 if self.num_slices is None else self.num_slices
        gen = torch.Generator().manual_seed(item_seed(self.seed, self.epoch, batch, 1))
        return self.min_slices + _randint(self.num_slices - self.min_slices + 1, gen)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        indices = list(self.sampler)
        for b in range(self.start_batch, len(self)):
            chunk = indices[b * self.batch_size : (b + 1) * self.batch_size]
            n = self._slices(b)
            yield [(i, self.epoch, n) for i in chunk]
