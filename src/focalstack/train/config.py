"""Training configuration: small nested dataclasses, YAML round-trips and strict merging.

``TrainConfig`` holds everything a run needs; it is saved as ``config.yaml`` next to the checkpoints
and inside every checkpoint, so a run can be resumed or its model rebuilt from the checkpoint alone.
Unknown keys are errors that name the key, so a typo in a YAML file never passes silently.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from focalstack.data.procedural import ProceduralConfig
from focalstack.losses import LossConfig
from focalstack.models import ModelConfig
from focalstack.utils.io import atomic_write

C = TypeVar("C")


@dataclass
class DataConfig:
    """Training and validation data."""

    root: str = "procedural"
    """Folder of scene folders, or "procedural" for scenes generated on the fly."""
    val_root: str | None = None
    """Validation scene folders (may have ground truth, used for monitoring only); "procedural" for
    held-out procedural scenes; None: held-out procedural scenes when training on procedural data."""
    crop: int = 128
    """Random square crop in pixels (crops keep the pixel pitch)."""
    num_slices: int = 5
    """Slices per training item (a random subset of each scene's slices)."""
    min_slices: int | None = None
    """If set, each batch draws its slice count from [min_slices, num_slices]."""
    batch_size: int = 4
    """Items per batch on each process."""
    num_workers: int = 0
    """DataLoader worker processes."""
    flip: bool = True
    """Random horizontal / vertical flips."""
    range_margin: float = 1.0
    """Working-range margin (mean slice spacings around each scene's focus range)."""
    estimate_blur_scale: bool = False
    """Estimate one blur-scale factor per scene jointly with the network (unknown pixel pitch or
    f-number, typical for phones). Scenes with focus distances but an incomplete camera are then accepted
    and completed with the nominal lens that `focalstack fit` uses; the factors are written to
    blur_scales.json in the run folder. Needs scene folders (not "procedural")."""
    procedural: ProceduralConfig = field(default_factory=ProceduralConfig)
    """Procedural scene settings."""
    epoch_length: int = 1024
    """Procedural items per epoch."""
    procedural_pool: int = 0
    """Re-augment a fixed pool of this many procedural scenes (made once, kept in memory); 0 makes a
    new scene for every item (about as costly as a training step on a CPU)."""
    val_scenes: int = 16
    """Held-out procedural validation scenes (0: no procedural validation)."""
    val_seed: int = 1_000_003
    """Seed of the held-out procedural scenes (differs from any training seed)."""


@dataclass
class OptimConfig:
    """AdamW with a cosine (or constant) schedule and linear warmup."""

    lr: float = 5e-4
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = 0
    """Linear warmup from 0 over this many steps."""
    min_lr_ratio: float = 0.0
    """Cosine floor as a fraction of lr."""
    grad_clip: float = 1.0
    """Max global gradient norm of the network; 0 disables clipping."""
    blur_scale_lr: float = 1e-2
    """Learning rate of the per-scene log blur scales (data.estimate_blur_scale): their own parameter
    group, without weight decay or clipping, on the same warmup / schedule as lr."""
    anneal_to_budget: bool = False
    """With time_budget_min: the cosine's progress is max(step / max_steps, elapsed / budget), so the
    schedule ends when the time is up however fast the machine is (set max_steps generously). Rank 0's
    clock decides for all ranks; elapsed time counts from the start of this run (a resume restarts it)."""


@dataclass
class LogConfig:
    """Logging, validation and checkpoint intervals (in optimiser steps)."""

    log_every: int = 20
    """TensorBoard scalars (loss terms, lr, it/s)."""
    image_every: int = 500
    """TensorBoard image grids (input slices, re-rendered slices, AIF, depth); 0 disables."""
    val_every: int = 1000
    """Validation; 0 disables (validation also runs at the end)."""
    ckpt_every: int = 1000
    """Overwrite last.pt; a checkpoint is always written at the end."""
    keep_every: int = 0
    """Also keep step_NNNNNNN.pt every this many steps; 0 keeps only last.pt."""
    tensorboard: bool = True
    progress: bool = True
    """tqdm progress bar."""


@dataclass
class TrainConfig:
    """A complete training run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    log: LogConfig = field(default_factory=LogConfig)
    out: str = "runs/default"
    """Run folder: checkpoints, config.yaml, TensorBoard events."""
    max_steps: int = 2000
    """Optimiser steps (also the cosine schedule's length)."""
    time_budget_min: float | None = None
    """Stop (with a checkpoint) after this many minutes of training."""
    seed: int = 0
    device: str = "auto"
    """"auto" (CUDA when available), "cpu", "cuda", "cuda:1", ..."""
    threads: int | None = None
    """CPU intra-op threads (None: torch's default). On a CPU shared with other jobs, 1 thread can be
    several times faster than 2 because idle-waiting threads contend."""
    amp: Literal["none", "bf16", "fp16"] = "none"
    """Mixed precision for the network on CUDA (ignored with a warning on CPU)."""
    init: str | None = None
    """Initial weights: "default" (shipped weights) or a checkpoint path (test-time adaptation)."""
    focus_prior_fade: float = 0.0
    """Fraction of training over which ``loss.focus_prior_weight`` falls to 0 along a half cosine (the
    progress the lr schedule uses: steps, or the time budget with ``optim.anneal_to_budget``); 0 keeps
    the weight constant. The prior gives the network a classical start; fading it leaves the end of
    training to the re-rendering loss alone."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid setting."""
        o, d, lg, budget = self.optim, self.data, self.log, self.time_budget_min
        rules = [
            ("max_steps", self.max_steps, self.max_steps >= 1, ">= 1"),
            ("time_budget_min", budget, budget is None or budget > 0, "> 0"),
            (
                "optim.anneal_to_budget",
                o.anneal_to_budget,
                not o.anneal_to_budget or budget is not None,
                "only with time_budget_min",
            ),
            ("focus_prior_fade", self.focus_prior_fade, 0 <= self.focus_prior_fade <= 1, "in [0, 1]"),
            ("threads", self.threads, self.threads is None or self.threads >= 1, ">= 1 or None"),
            ("data.batch_size", d.batch_size, d.batch_size >= 1, ">= 1"),
            ("data.num_slices", d.num_slices, d.num_slices >= 2, ">= 2"),
            ("data.crop", d.crop, d.crop >= 8, ">= 8 pixels"),
            ("data.num_workers", d.num_workers, d.num_workers >= 0, ">= 0"),
            ("optim.lr", o.lr, o.lr > 0, "> 0"),
            ("optim.blur_scale_lr", o.blur_scale_lr, o.blur_scale_lr > 0, "> 0"),
            ("optim.grad_clip", o.grad_clip, o.grad_clip >= 0, ">= 0 (0 disables)"),
            ("optim.warmup_steps", o.warmup_steps, o.warmup_steps >= 0, ">= 0"),
            ("optim.min_lr_ratio", o.min_lr_ratio, 0 <= o.min_lr_ratio <= 1, "in [0, 1]"),
        ]
        for name in ("log_every", "image_every", "val_every", "ckpt_every", "keep_every"):
            value = getattr(lg, name)
            rules.append((f"log.{name}", value, value >= 0, ">= 0 (0 disables)"))
        if d.root == "procedural":  # fail now rather than inside a loader worker
            size, fewest = d.procedural.size, d.procedural.num_slices[0]
            rules.append(("data.crop", d.crop, d.crop <= min(size), f"<= data.procedural.size {size}"))
            ok = d.num_slices <= fewest
            rules.append(("data.num_slices", d.num_slices, ok, f"<= {fewest} (procedural minimum)"))
        if d.estimate_blur_scale and d.root == "procedural":
            rules.append(("data.root", d.root, False, "scene folders when data.estimate_blur_scale is on"))
        if d.min_slices is not None:
            ok = 2 <= d.min_slices <= d.num_slices
            rules.append(("data.min_slices", d.min_slices, ok, "in [2, num_slices]"))
        for name, value, ok, need in rules:
            if not ok:
                raise ValueError(f"{name} must be {need}, got {value!r}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass as plain YAML/JSON-able data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Check / convert one value against a field's type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ValueError(f"config {where}: expected a mapping, got {value!r}")
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(errors[0] if len(errors) == 1 else f"config {where}: invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ValueError(f"config {where}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config {where}: expected a list, got {value!r}")
        items = args if args and args[-1] is not Ellipsis else (args[0],) * len(value) if args else ()
        if args and len(items) != len(value):
            raise ValueError(f"config {where}: expected {len(items)} values, got {list(value)}")
        return tuple(_coerce(h, v, f"{where}[{i}]") for i, (h, v) in enumerate(zip(items, value)))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    # bool is an int subclass: accept it only where a bool is expected.
    if hint in (int, float, str, bool) and not (
        isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
    ):
        raise ValueError(f"config {where}: expected {hint.__name__}, got {value!r}")
    return value


def from_dict(cls: type[C], data: Mapping[str, Any], where: str = "", *, strict: bool = True) -> C:
    """Build dataclass ``cls`` from a (possibly partial) mapping; missing fields keep their defaults.

    Args:
        cls: the dataclass type.
        data: nested mapping (e.g. parsed YAML).
        where: dotted prefix for error messages.
        strict: unknown keys are errors; False drops them with a warning (old checkpoints).

    Raises:
        ValueError: unknown keys (when strict) or values of the wrong type, naming the dotted key.
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    prefix = f"{where}." if where else ""
    unknown = sorted(set(data) - names)
    if unknown:
        msg = f"unknown config key(s) {[prefix + k for k in unknown]}; valid: {sorted(names)}"
        if strict:
            raise ValueError(msg)
        warnings.warn(f"ignoring {msg}", stacklevel=2)
    kwargs = {}
    for k in names & set(data):
        hint, value = hints[k], data[k]
        if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            kwargs[k] = from_dict(hint, value, prefix + k, strict=strict)
        else:
            kwargs[k] = _coerce(hint, value, prefix + k)
    return cls(**kwargs)


def deep_update(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; values of ``update`` win, nested mappings merge key by key."""
    out = dict(base)
    for k, v in update.items():
        out[k] = deep_update(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def merge(cfg: C, overrides: Mapping[str, Any]) -> C:
    """A copy of ``cfg`` with the (nested, partial) ``overrides`` applied, type-checked."""
    return from_dict(type(cfg), deep_update(to_dict(cfg), overrides))


def diff(a: Any, b: Any, where: str = "") -> list[str]:
    """Human-readable differences between two configs of the same type, e.g. ``["width: 16 != 8"]``."""
    da, db = (to_dict(x) if dataclasses.is_dataclass(x) else dict(x) for x in (a, b))
    out = []
    for k in [*da, *(k for k in db if k not in da)]:
        key = f"{where}.{k}" if where else k
        va, vb = da.get(k, "<missing>"), db.get(k, "<missing>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff(va, vb, key)
        elif va != vb:
            out.append(f"{key}: {va!r} != {vb!r}")
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file as a (partial) nested dict."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping at the top level")
    return data


def save_yaml(cfg: Any, path: str | Path) -> Path:
    """Write a config as YAML, atomically."""
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False)
    return atomic_write(path, lambda p: p.write_text(text))
