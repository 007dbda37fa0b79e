"""``focalstack train``: self-supervised training from a preset, a YAML file and flags.

Settings are resolved in this order, later wins:

1. ``--preset`` (default ``procedural-cpu``; with ``--resume`` and no ``--preset``, the config stored in
   the checkpoint, so ``focalstack train --resume runs/NAME`` just continues);
2. ``--config file.yaml`` (any subset of the ``config.yaml`` a run writes);
3. flags: ``--data``, ``--out``, ..., data settings such as ``--crop`` / ``--batch-size``, and
   ``--model.*``, ``--loss.*``, ``--optim.*``, ``--log.*`` for the other sections.

Multi-GPU / multi-process: ``torchrun --nproc_per_node N "$(command -v focalstack)" train ...``.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import tyro
import yaml

from focalstack.losses import LossConfig
from focalstack.models import ModelConfig
from focalstack.train.checkpoint import LAST, checkpoint_config, load_checkpoint
from focalstack.train.config import DataConfig, LogConfig, OptimConfig, TrainConfig, load_yaml, merge, to_dict
from focalstack.train.presets import DEFAULT_PRESET, get_preset

_DEFAULTS = get_preset(DEFAULT_PRESET)
_PRESET = tyro.conf.arg(help_behavior_hint="(default: from the preset / config)")


def _field_help(cls: type, name: str) -> str:
    try:  # tyro reads attribute docstrings; reuse them for the generated flags when it can
        from tyro._docstrings import get_field_docstring

        return get_field_docstring(cls, name, ()) or ""
    except Exception:
        return ""


def _overrides_of(cls: type, defaults: Any, skip: tuple[str, ...] = ()) -> list[tuple[str, Any, Any]]:
    """make_dataclass fields mirroring dataclass ``cls`` with every leaf optional (None = not given)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        hint, default = hints[f.name], getattr(defaults, f.name)
        if dataclasses.is_dataclass(hint):
            sub = dataclasses.make_dataclass(f"{hint.__name__}Flags", _overrides_of(hint, default))
            out.append((f.name, sub, field(default_factory=sub)))
            continue
        arg = tyro.conf.arg(help=_field_help(cls, f.name), help_behavior_hint=f"(default: {default!r})")
        out.append((f.name, Annotated[hint | None, arg], field(default=None)))
    return out


def _given(flags: Any) -> dict[str, Any]:
    """Nested dict of the values set on the command line (None means "not given")."""
    out = {}
    for f in dataclasses.fields(flags):
        value = getattr(flags, f.name)
        if dataclasses.is_dataclass(value):
            value = _given(value) or None
        if value is not None:
            out[f.name] = value
    return out


def _section(name: str, cls: type) -> tuple[str, Any, Any]:
    """A nested flag group ``--NAME.FIELD`` for config section ``cls``."""
    flags = dataclasses.make_dataclass(f"{cls.__name__}Flags", _overrides_of(cls, getattr(_DEFAULTS, name)))
    return name, flags, field(default_factory=flags)


# Data settings are top-level flags (--crop, --batch-size, ...); --data itself is the data root.
_DATA_FIELDS = _overrides_of(DataConfig, _DEFAULTS.data, skip=("root",))
_SECTIONS = [
    _section("model", ModelConfig),
    _section("loss", LossConfig),
    _section("optim", OptimConfig),
    _section("log", LogConfig),
]


@dataclass
class _TrainFlags:
    """Train a model self-supervised on focal stacks (ground truth, if any, is only used for monitoring)."""

    config: Path | None = None
    """YAML config file (e.g. a run's config.yaml); its values override the preset."""
    preset: str | None = None
    """Named settings: procedural-cpu (default), paper-nyu, paper-defocusnet, tta (test-time adaptation)."""
    data: Annotated[str | None, _PRESET] = None
    """Folder of scene folders (e.g. `focalstack synth` output), or "procedural"."""
    out: Annotated[str | None, _PRESET] = None
    """Run folder (checkpoints, config.yaml, TensorBoard events), e.g. runs/NAME."""
    resume: str | None = None
    """Continue a run exactly: its folder or a checkpoint file."""
    init: Annotated[str | None, _PRESET] = None
    """Start from these weights: "default" (shipped) or a checkpoint (test-time adaptation)."""
    max_steps: Annotated[int | None, _PRESET] = None
    """Optimiser steps (also the length of the cosine schedule)."""
    time_budget_min: Annotated[float | None, _PRESET] = None
    """Stop after this many minutes (a checkpoint is written)."""
    seed: Annotated[int | None, _PRESET] = None
    """Random seed."""
    device: Annotated[str | None, _PRESET] = None
    """auto, cpu, cuda, cuda:1, ..."""
    threads: Annotated[int | None, _PRESET] = None
    """CPU threads (on a CPU shared with other jobs 1 can be much faster than 2)."""
    amp: Annotated[str | None, _PRESET] = None
    """Mixed precision on CUDA: none, bf16 or fp16."""
    focus_prior_fade: Annotated[float | None, _PRESET] = None
    """Fraction of training over which --loss.focus-prior-weight fades to 0 (0: constant)."""
    print_config: bool = False
    """Print the resolved config as YAML and exit."""

    def resolve(self) -> TrainConfig:
        """The run's config: preset (or resumed config) < --config YAML < flags."""
        if self.preset is not None or self.resume is None:
            cfg = get_preset(self.preset or DEFAULT_PRESET)
        else:
            cfg = checkpoint_config(load_checkpoint(self.resume), strict=False)
        if self.config is not None:
            cfg = merge(cfg, load_yaml(self.config))
        given = _given(self)
        for key in ("config", "preset", "resume", "print_config"):
            given.pop(key, None)
        data = {k: given.pop(k) for k, *_ in _DATA_FIELDS if k in given}
        if "data" in given:
            data["root"] = given.pop("data")
        return merge(cfg, {**given, "data": data})

    def run(self) -> None:
        from focalstack.train.trainer import BLUR_SCALES_JSON, Trainer

        logging.basicConfig(level=logging.INFO, format="%(message)s")
        try:
            cfg = self.resolve()
            cfg.validate()
            if self.print_config:
                print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
                return
            if self.resume is None and (Path(cfg.out) / LAST).exists():
                raise ValueError(
                    f"{cfg.out} already holds a run; pass --resume {cfg.out} to continue it or choose --out"
                )
            trainer = Trainer(cfg, resume=self.resume)
        except (ValueError, FileNotFoundError) as err:
            raise SystemExit(f"focalstack train: {err}") from err
        try:
            summary = trainer.fit()
        finally:
            trainer.close()
        if trainer.ctx.is_main:
            val = ", ".join(f"{k} {v:.4g}" for k, v in summary["val"].items())
            print(
                f"done: {summary['steps']} steps ({summary['skipped_steps']} skipped), "
                f"{summary['it_per_s']:.2f} it/s; checkpoint {Path(cfg.out) / LAST}"
                + (f"; validation: {val}" if val else "")
                + (f"; blur scales: {Path(cfg.out) / BLUR_SCALES_JSON}" if "blur_scales" in summary else "")
            )


TrainCommand = dataclasses.make_dataclass(
    "TrainCommand",
    _DATA_FIELDS + _SECTIONS,
    bases=(_TrainFlags,),
    namespace={"__doc__": _TrainFlags.__doc__, "__module__": __name__},
)
