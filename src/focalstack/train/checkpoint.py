"""Checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is a dict saved with ``torch.save`` holding only tensors and plain Python data (it loads
with ``weights_only=True``)::

    {"format": 1, "focalstack_version", "model", "optimizer", "scheduler", "scaler",
     "step", "epoch", "batch_in_epoch", "rng", "config" (TrainConfig as a dict), "normalization"}

``normalization`` records how the network's inputs and outputs map to metres (docs/CONVENTIONS.md),
so inference uses the settings the model was trained with. The trainer adds its counters (``skipped``,
``best_val``) and, with ``data.estimate_blur_scale``, ``blur_log_scales`` (``{scene name: log factor}``
in parameter order, so the factors are restored by name).
"""

from __future__ import annotations

import random
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import focalstack
from focalstack.data.normalize import MIN_DIOPTER
from focalstack.models import ModelConfig, build_model
from focalstack.train.config import TrainConfig, diff, from_dict, to_dict
from focalstack.utils.io import atomic_write

FORMAT = 1
#: Checkpoint name inside a run folder, and the shipped weights inside the package.
LAST = "last.pt"
DEFAULT_WEIGHTS = "default.pt"


def default_weights_path() -> Path:
    """``focalstack/weights/default.pt`` inside the installed package."""
    return Path(str(resources.files("focalstack") / "weights" / DEFAULT_WEIGHTS))


def resolve_checkpoint(spec: str | Path) -> Path:
    """A checkpoint file from ``"default"``, a run folder (its ``last.pt``) or a file path.

    Raises:
        FileNotFoundError: nothing usable at that location.
    """
    path = default_weights_path() if str(spec) == "default" else Path(spec)
    if path.is_dir():
        path = path / LAST
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (from {str(spec)!r})")
    return path


def normalization_settings(cfg: TrainConfig) -> dict[str, Any]:
    """How network I/O maps to metres for a run (stored in its checkpoints)."""
    return {
        "focus_input": "u = (1/F - D_min) / (D_max - D_min)",
        "depth_output": "depth_m = 1 / (D_min + t (D_max - D_min))",
        "depth_range": "focus range widened by range_margin spacings (scene.json depth_range_m unused)",
        "range_margin": cfg.data.range_margin,
        "min_diopter": MIN_DIOPTER,
    }


def rng_state() -> dict[str, Any]:
    """Every global RNG state (torch CPU / CUDA, numpy, python) as tensors and plain data."""
    # The legacy global numpy RNG is what third-party code may draw from, so it is the one to save.
    np_state = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": _to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _to_plain(x: Any) -> Any:
    return [_to_plain(v) for v in x] if isinstance(x, (tuple, list)) else x


def _to_tuple(x: Any) -> Any:
    return tuple(_to_tuple(v) for v in x) if isinstance(x, list) else x


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA only when present on both sides)."""
    torch.set_rng_state(state["torch"].cpu())
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))  # noqa: NPY002
    random.setstate(_to_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    step: int = 0,
    epoch: int = 0,
    batch_in_epoch: int = 0,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (a crash mid-write leaves the previous file intact).

    Args:
        path: target file.
        model: the (possibly DDP-wrapped) model.
        config: the run's resolved config.
        optimizer, scheduler, scaler: training state (None for weights-only checkpoints).
        step: optimiser steps done; epoch / batch_in_epoch: where the data stream stands.
        extra: further plain entries (e.g. trainer counters).

    Returns:
        ``Path(path)``.
    """
    ckpt = {
        "format": FORMAT,
        "focalstack_version": focalstack.__version__,
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "step": step,
        "epoch": epoch,
        "batch_in_epoch": batch_in_epoch,
        "rng": rng_state(),
        "config": to_dict(config),
        "normalization": normalization_settings(config),
        **(extra or {}),
    }
    return atomic_write(path, lambda p: torch.save(ckpt, p))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``path`` as for :func:`resolve_checkpoint`).

    Raises:
        ValueError: the file is not a focalstack checkpoint.
    """
    path = resolve_checkpoint(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt / foreign files
        raise ValueError(f"{path} is not a readable focalstack checkpoint: {err}") from err
    missing = [k for k in ("format", "model", "config") if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(f"{path} is not a focalstack checkpoint (missing {missing})")
    if ckpt["format"] > FORMAT:
        raise ValueError(f"{path} has checkpoint format {ckpt['format']}; this focalstack reads <= {FORMAT}")
    ckpt["path"] = str(path)
    return ckpt


def checkpoint_config(ckpt: dict[str, Any], *, strict: bool = True) -> TrainConfig:
    """The TrainConfig stored in a loaded checkpoint (``strict=False`` ignores keys this version lacks)."""
    return from_dict(TrainConfig, ckpt["config"], strict=strict)


def check_model_compatible(saved: ModelConfig, current: ModelConfig, source: str = "checkpoint") -> None:
    """Raise ``ValueError`` naming every model field where ``saved`` and ``current`` differ."""
    fields = diff(saved, current)
    if fields:
        listing = "; ".join(f"model.{f}" for f in fields)
        raise ValueError(
            f"{source} holds an incompatible model ({listing}; checkpoint != current). "
            "Use the checkpoint's model settings (e.g. --model.width) or another checkpoint."
        )


def load_weights(model: nn.Module, ckpt: dict[str, Any], model_cfg: ModelConfig) -> None:
    """Load a checkpoint's weights into ``model`` after checking the model configs match."""
    saved = from_dict(ModelConfig, ckpt["config"]["model"], "model")
    check_model_compatible(saved, model_cfg, ckpt.get("path", "checkpoint"))
    unwrap(model).load_state_dict(ckpt["model"])


def load_model(
    checkpoint_path: str | Path, device: str | torch.device | None = None
) -> tuple[nn.Module, TrainConfig]:
    """Rebuild a trained model for inference from its checkpoint alone.

    Args:
        checkpoint_path: checkpoint file, run folder, or "default" (the shipped weights).
        device: where to put the model (default CPU).

    Returns:
        ``(model in eval mode, the TrainConfig stored with the checkpoint)``; ``config.model`` built the
        network and ``config.data.range_margin`` is the normalisation margin it was trained with.
    """
    ckpt = load_checkpoint(checkpoint_path)
    cfg = checkpoint_config(ckpt, strict=False)
    model = build_model(cfg.model)
    load_weights(model, ckpt, cfg.model)
    return model.to(torch.device(device or "cpu")).eval(), cfg
