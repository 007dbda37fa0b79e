"""The self-supervised trainer: one readable loop (monodepth2 style) for CPU, CUDA and torchrun.

A step: focus distances -> normalised ``u`` -> network -> ``t`` -> depth in metres -> self-supervised
losses on ``batch["inputs"]`` only -> AdamW step. Ground truth in ``batch["targets"]`` is used for
validation metrics only. With ``data.estimate_blur_scale`` one blur-scale factor per scene
(:class:`~focalstack.train.blur_scales.BlurScales`, picked by ``inputs["scene_index"]``) multiplies the
blur in the losses and is optimised jointly with the network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from focalstack.data.dataset import ProceduralDataset, SceneFolderDataset, StackBatchSampler
from focalstack.data.normalize import focus_to_u, t_to_depth
from focalstack.eval.metrics import depth_metrics
from focalstack.inference.outputs import colorize_depth
from focalstack.losses import LossConfig, self_supervised_losses_detailed
from focalstack.models import ModelConfig, build_model
from focalstack.train import distributed
from focalstack.train.blur_scales import BlurScales, pick_factors, remap_rows
from focalstack.train.checkpoint import (
    LAST,
    check_model_compatible,
    checkpoint_config,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    set_rng_state,
)
from focalstack.train.config import OptimConfig, TrainConfig, diff, from_dict, save_yaml
from focalstack.utils.io import write_json

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

log = logging.getLogger("focalstack.train")

Batch = dict[str, dict[str, torch.Tensor]]
#: The batch-contract input that is not a loss input: it selects per-scene parameters (blur scales).
SCENE_INDEX = "scene_index"
#: Written to the run folder at the end of training with data.estimate_blur_scale: scene -> factor.
BLUR_SCALES_JSON = "blur_scales.json"
#: GT depth metrics reported during validation (monitoring only).
VAL_METRICS = ("absrel", "delta1", "rmse", "error_slices")


def lr_factor(step: int, cfg: OptimConfig, total_steps: int, time_progress: float = 0.0) -> float:
    """Learning-rate multiplier at ``step``: linear warmup, then cosine to ``min_lr_ratio`` (or constant).

    ``time_progress`` (fraction of a time budget used, ``optim.anneal_to_budget``) advances the cosine
    when it is ahead of the step count.
    """
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    progress = max(progress, min(1.0, time_progress))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def prior_fade_factor(progress: float, fade: float) -> float:
    """Multiplier of the focus-prior weight at training ``progress`` in [0, 1] (``focus_prior_fade``)."""
    if fade <= 0:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress / fade)))


def build_datasets(cfg: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """Training and validation datasets described by ``cfg.data`` (validation may be None).

    Validation items are deterministic: full images (all slices) of held-out procedural scenes or of
    the ``val_root`` scene folders. With ``data.estimate_blur_scale`` scene folders may have incomplete
    cameras (completed nominally).
    """
    d = cfg.data
    common = {"flip": d.flip, "range_margin": d.range_margin}
    scenes = {"estimate_blur_scale": d.estimate_blur_scale}
    if d.root == "procedural":
        train: Dataset = ProceduralDataset(
            d.procedural,
            d.epoch_length,
            cfg.seed,
            crop=d.crop,
            num_slices=d.num_slices,
            pool=d.procedural_pool,
            **common,
        )
    else:
        train = SceneFolderDataset(d.root, d.crop, d.num_slices, seed=cfg.seed, **common, **scenes)
    val_root = d.val_root if d.val_root is not None else ("procedural" if d.root == "procedural" else None)
    if val_root is None or (val_root == "procedural" and d.val_scenes == 0):
        return train, None
    if val_root == "procedural":
        return train, ProceduralDataset(d.procedural, d.val_scenes, d.val_seed, augment=False, **common)
    return train, SceneFolderDataset(val_root, None, None, augment=False, **common, **scenes)


def to_device(tree: Any, device: torch.device) -> Any:
    """Move every tensor of a nested dict to ``device``."""
    if isinstance(tree, Mapping):
        return {k: to_device(v, device) for k, v in tree.items()}
    return tree.to(device, non_blocking=True) if isinstance(tree, torch.Tensor) else tree


def loss_inputs(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``batch["inputs"]`` without ``scene_index`` (not a loss input), for the self-supervised losses."""
    return {k: v for k, v in inputs.items() if k != SCENE_INDEX}


def predict_depth(model: torch.nn.Module, inputs: dict[str, torch.Tensor], amp: torch.dtype | None = None):
    """Run the network on a batch's inputs and convert its output to metres.

    Args:
        model: forward(stack, focus_u, focus_m=) -> {"aif", "t"} (docs/CONVENTIONS.md).
        inputs: ``batch["inputs"]``.
        amp: autocast dtype for the network (CUDA), or None.

    Returns:
        ``{"aif": (B, 3, H, W), "t": (B, 1, H, W), "depth_m": (B, 1, H, W) metres}``, float32.
    """
    focus_u = focus_to_u(inputs["focus_m"], inputs["depth_range_m"])
    stack = inputs["stack"]
    ctx = torch.autocast(stack.device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    with ctx:
        raw = model(stack, focus_u, focus_m=inputs["focus_m"])
    aif, t = raw["aif"].float(), raw["t"].float()
    return {"aif": aif, "t": t, "depth_m": t_to_depth(t, inputs["depth_range_m"])}


class Trainer:
    """Self-supervised training of a focal-stack network.

    Args:
        cfg: the run's configuration.
        resume: checkpoint file or run folder to continue exactly (step, optimiser, schedule, RNG, data
            position); its model settings must match ``cfg.model``.
        train_set, val_set: datasets overriding those described by ``cfg.data`` (items follow the
            batch contract; ``val_set=None`` uses ``cfg.data``'s validation set). With
            ``data.estimate_blur_scale`` the training set needs ``scene_names`` (as
            :class:`~focalstack.data.dataset.SceneFolderDataset`).

    Attributes:
        blur_scales: the per-scene blur scales (``data.estimate_blur_scale``), else None.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        resume: str | Path | None = None,
        train_set: Dataset | None = None,
        val_set: Dataset | None = None,
    ) -> None:
        cfg.validate()
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        self.ctx = distributed.setup(cfg.device)
        ckpt = load_checkpoint(resume) if resume is not None else None
        if ckpt is None and cfg.init is not None:
            cfg, init_ckpt = self._adopt_init_model(cfg)
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.amp = self._amp_dtype()
        distributed.seed_everything(cfg.seed, self.ctx.rank)

        self.model = build_model(cfg.model).to(self.ctx.device)
        if ckpt is None and cfg.init is not None:
            load_weights(self.model, init_ckpt, cfg.model)
        self.net = distributed.wrap_model(self.model, self.ctx)

        if train_set is None:
            train_set, default_val = build_datasets(cfg)
            val_set = default_val if val_set is None else val_set
        self.train_set, self.val_set = train_set, val_set
        self.blur_scales = self._make_blur_scales(train_set)
        o = cfg.optim
        groups: list[dict[str, Any]] = [{"params": list(self.model.parameters())}]
        if self.blur_scales is not None:
            # Per-scene factors are not weights to shrink: no decay; their own (much larger) lr.
            scale_group = {"params": [self.blur_scales.log_scale], "lr": o.blur_scale_lr, "weight_decay": 0.0}
            groups.append(scale_group)
        self.optimizer = torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay, betas=o.betas)
        self._time_progress, self._fit_start = 0.0, None
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, o, cfg.max_steps, self._time_progress)
        )
        # The loss weights (1e3 on reconstruction) already scale gradients up; torch's default initial
        # scale of 2**16 would overflow float16 for the first several steps.
        self.scaler = torch.amp.GradScaler(
            self.ctx.device.type, init_scale=2.0**8, enabled=self.amp == torch.float16
        )

        self.sampler = StackBatchSampler(
            train_set,
            cfg.data.batch_size,
            num_slices=cfg.data.num_slices,
            min_slices=cfg.data.min_slices,
            seed=cfg.seed,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
        )
        self.step = self.epoch = self.batch_in_epoch = 0
        self.skipped = 0
        self.best_val = math.inf
        self.val_step = -1  # step of the last validation
        self.writer: SummaryWriter | None = None
        self._images: tuple | None = None  # (inputs, outputs, render) kept for the next image log
        self._rate_mark: tuple[int, float] | None = None  # (step, time) of the last it/s measurement
        if ckpt is not None:
            self._restore(ckpt)

    # ----------------------------------------------------------------- setup helpers

    def _adopt_init_model(self, cfg: TrainConfig) -> tuple[TrainConfig, dict[str, Any]]:
        """``--init`` weights define the architecture: take the checkpoint's model settings."""
        ckpt = load_checkpoint(cfg.init)
        saved = from_dict(ModelConfig, ckpt["config"]["model"], "model")
        changed = diff(cfg.model, saved, "model")
        if changed:
            self._info(f"--init {cfg.init}: using the checkpoint's model settings ({'; '.join(changed)})")
            cfg = dataclasses.replace(cfg, model=saved)
        return cfg, ckpt

    def _make_blur_scales(self, train_set: Dataset) -> BlurScales | None:
        """One log blur scale per training scene when ``data.estimate_blur_scale`` is on."""
        if not self.cfg.data.estimate_blur_scale:
            return None
        names = getattr(train_set, "scene_names", None)
        if names is None:
            raise ValueError(
                "data.estimate_blur_scale needs a training set of named scenes (scene folders); "
                f"{type(train_set).__name__} has no scene_names"
            )
        return BlurScales(names).to(self.ctx.device)

    def _amp_dtype(self) -> torch.dtype | None:
        if self.cfg.amp == "none":
            return None
        if self.ctx.device.type != "cuda":
            log.warning("amp=%s needs CUDA; training in float32 on %s", self.cfg.amp, self.ctx.device)
            return None
        return {"bf16": torch.bfloat16, "fp16": torch.float16}[self.cfg.amp]

    def _restore(self, ckpt: dict[str, Any]) -> None:
        """Continue from a checkpoint exactly where it stopped."""
        saved = checkpoint_config(ckpt, strict=False)
        check_model_compatible(saved.model, self.cfg.model, ckpt["path"])
        changed = [c for c in diff(saved, self.cfg) if not c.startswith(("out:", "init:"))]
        if changed:
            self._info(f"resuming with changed settings: {'; '.join(changed)}")
        load_weights(self.model, ckpt, self.cfg.model)
        self.optimizer.load_state_dict(self._restore_blur_scales(ckpt))
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler") is not None and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step, self.epoch, self.batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]
        self.skipped = ckpt.get("skipped", 0)
        self.best_val = ckpt.get("best_val", math.inf)
        set_rng_state(ckpt["rng"])
        self._info(f"resumed from {ckpt['path']} at step {self.step} (epoch {self.epoch})")

    def _restore_blur_scales(self, ckpt: dict[str, Any]) -> dict[str, Any]:
        """Load the checkpoint's blur scales by scene name; its optimiser state, remapped to our scenes."""
        saved = ckpt.get("blur_log_scales")
        if (saved is None) != (self.blur_scales is None):
            had = "without" if saved is None else "with"
            raise ValueError(
                f"{ckpt['path']} was trained {had} data.estimate_blur_scale; resume with the same setting"
            )
        state = ckpt["optimizer"]
        if self.blur_scales is None:
            return state
        ignored = self.blur_scales.load_by_name(saved)
        saved_names, names = list(saved), self.blur_scales.names
        if saved_names != names:
            new = [n for n in names if n not in saved]
            self._info(
                f"blur scales restored by scene name; {len(new)} new scene(s) start at 1, "
                f"{len(ignored)} scene(s) of the checkpoint are gone"
            )
            # The scales are the only parameter of the second group; move their Adam moments by name.
            pid = state["param_groups"][1]["params"][0]
            moments = state["state"].get(pid, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in moments:
                    moments[key] = remap_rows(moments[key], saved_names, names)
        return state

    def _info(self, msg: str) -> None:
        if self.ctx.is_main:
            log.info(msg)

    def _loader(self, dataset: Dataset, batch_sampler=None) -> DataLoader:
        workers = self.cfg.data.num_workers
        return DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            num_workers=workers,
            persistent_workers=workers > 0 and batch_sampler is not None,
            pin_memory=self.ctx.device.type == "cuda",
        )

    # ----------------------------------------------------------------- training

    def fit(self, steps: int | None = None) -> dict[str, Any]:
        """Train until ``max_steps`` (or the time budget); validate and checkpoint at the end.

        Args:
            steps: stop after at most this many further steps (the schedule still spans
                ``max_steps``; a later ``fit`` or ``--resume`` continues exactly).

        Returns:
            Summary: steps done, skipped steps, last training losses, last validation results, it/s,
            and with ``data.estimate_blur_scale`` the per-scene factors (``blur_scales``, also written to
            ``blur_scales.json`` in the run folder).
        """
        cfg = self.cfg
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_yaml(cfg, self.out / "config.yaml")
            if cfg.log.tensorboard:
                from torch.utils.tensorboard import SummaryWriter  # slow import: only when used

                self.writer = SummaryWriter(str(self.out / "tb"))
        start, start_step = time.monotonic(), self.step
        self._fit_start = start
        stop_step = min(cfg.max_steps, self.step + steps) if steps is not None else cfg.max_steps
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.step,
            desc="train",
            dynamic_ncols=True,
            disable=not (self.ctx.is_main and cfg.log.progress),
        )
        last: dict[str, float] = {}
        val: dict[str, float] = {}
        with logging_redirect_tqdm():
            for batch in self._batches(stop_step):
                images = self._due(cfg.log.image_every)
                last = self.train_step(batch, keep_images=images)
                bar.update(1)
                bar.set_postfix(loss=f"{last['total']:.4g}", lr=f"{last['lr']:.2e}", skipped=self.skipped)
                self._log_step(last, images)
                if self._due(cfg.log.val_every):
                    val = self.validate()
                if self._due(cfg.log.ckpt_every) or self._due(cfg.log.keep_every):
                    self.save()
                if self._out_of_time(start):
                    self._info(f"time budget of {cfg.time_budget_min} min reached at step {self.step}")
                    break
            bar.close()
            if self.val_step != self.step:
                val = self.validate() or val
            self.save()
            if self.blur_scales is not None and self.ctx.is_main:
                write_json(self.out / BLUR_SCALES_JSON, self.blur_scales.factors())
        distributed.barrier(self.ctx)
        elapsed = time.monotonic() - start
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        return {
            "steps": self.step,
            "skipped_steps": self.skipped,
            "train": last,
            "val": val,
            "elapsed_s": elapsed,
            "it_per_s": (self.step - start_step) / elapsed if elapsed > 0 else 0.0,
            **({"blur_scales": self.blur_scales.factors()} if self.blur_scales is not None else {}),
        }

    def _batches(self, stop_step: int) -> Iterator[Batch]:
        """Batches from the current data position until ``stop_step``; advances the epoch counters."""
        loader = self._loader(self.train_set, self.sampler)
        while self.step < stop_step:
            self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
            for batch in loader:
                self.batch_in_epoch += 1
                yield batch
                if self.step >= stop_step:
                    return
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    def _due(self, every: int) -> bool:
        return every > 0 and self.step % every == 0

    def _budget_progress(self) -> float:
        """Fraction of the time budget used (``optim.anneal_to_budget``), identical on every rank."""
        budget = self.cfg.time_budget_min
        if not (self.cfg.optim.anneal_to_budget and budget and self._fit_start is not None):
            return 0.0
        elapsed = min(1.0, (time.monotonic() - self._fit_start) / (budget * 60))
        return distributed.broadcast_float(elapsed, self.ctx)

    def _out_of_time(self, start: float) -> bool:
        budget = self.cfg.time_budget_min
        if budget is None:
            return False
        # Every rank must stop at the same step, so rank 0's clock decides for all.
        return distributed.any_true(self.ctx.is_main and time.monotonic() - start > budget * 60, self.ctx)

    def train_step(self, batch: Batch, *, keep_images: bool = False) -> dict[str, float]:
        """One optimiser step on a batch; a non-finite loss or gradient skips the update.

        Args:
            batch: a collated batch (batch contract); only ``batch["inputs"]`` (less ``scene_index``)
                reaches the loss.
            keep_images: keep this step's images for :meth:`log_images`.

        Returns:
            Loss terms, ``grad_norm``, ``lr`` and ``skipped`` (1.0 if the update was skipped) as floats.
        """
        inputs = to_device(batch["inputs"], self.ctx.device)
        self.net.train()
        outputs = predict_depth(self.net, inputs, self.amp)
        render = None
        if bool(torch.isfinite(outputs["aif"]).all() & torch.isfinite(outputs["depth_m"]).all()):
            result = self_supervised_losses_detailed(
                loss_inputs(inputs),
                {"aif": outputs["aif"], "depth_m": outputs["depth_m"]},
                self.loss_config(),
                blur_scale=self._blur_scale(inputs),
            )
            terms, render, objective = result.terms, result.render, result.terms["total"]
        else:
            # The renderer rejects non-finite blur; a zero objective still runs backward, so DDP's
            # gradient all-reduce stays in step on every rank, and the update is skipped below.
            terms = {"total": torch.tensor(math.nan)}
            objective = 0.0 * sum(v.nan_to_num().sum() for v in outputs.values())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(objective).backward()
        scales = [self.blur_scales.log_scale] if self.blur_scales is not None else []
        distributed.average_gradients(scales, self.ctx)  # outside DDP: all-reduce them here
        self.scaler.unscale_(self.optimizer)
        clip = self.cfg.optim.grad_clip if self.cfg.optim.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        loss_ok = math.isfinite(float(terms["total"].detach()))
        scales_ok = all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in scales)
        finite = distributed.all_true(loss_ok and scales_ok and math.isfinite(float(grad_norm)), self.ctx)
        lr = self.optimizer.param_groups[0]["lr"]
        if finite:
            self.scaler.step(self.optimizer)
        else:
            self.skipped += 1
            # float16 gradient overflow is routine: the scaler lowers its scale and the step is redone
            # with the next batch. Anything else is worth a warning.
            level = logging.DEBUG if loss_ok and self.scaler.is_enabled() else logging.WARNING
            log.log(
                level,
                "step %d (rank %d): non-finite loss %.4g or gradient norm %.4g; update skipped (%d so far)",
                self.step,
                self.ctx.rank,
                float(terms["total"].detach()),
                float(grad_norm),
                self.skipped,
            )
        self.scaler.update()
        with warnings.catch_warnings():
            # The schedule follows the step count, skipped updates included; torch warns about that.
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            self._time_progress = self._budget_progress()
            self.scheduler.step()
        self.step += 1
        if keep_images and render is not None:
            self._images = (inputs, outputs, render)
        out = {k: float(v.detach()) for k, v in terms.items()}
        return {**out, "grad_norm": float(grad_norm), "lr": lr, "skipped": float(not finite)}

    def loss_config(self) -> LossConfig:
        """The loss settings at the current step: ``cfg.loss`` with the focus prior faded (if asked)."""
        loss, fade = self.cfg.loss, self.cfg.focus_prior_fade
        if fade <= 0 or loss.focus_prior_weight == 0:
            return loss
        progress = max(self.step / self.cfg.max_steps, self._time_progress)
        weight = loss.focus_prior_weight * prior_fade_factor(progress, fade)
        return dataclasses.replace(loss, focus_prior_weight=weight)

    def _blur_scale(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """(B,) per-item blur-scale factors (``data.estimate_blur_scale``), else None."""
        if self.blur_scales is None:
            return None
        if SCENE_INDEX not in inputs:
            raise ValueError("data.estimate_blur_scale needs inputs['scene_index'] (docs/CONVENTIONS.md)")
        return self.blur_scales(inputs[SCENE_INDEX])

    # ----------------------------------------------------------------- logging

    def _log_step(self, scalars: dict[str, float], images: bool) -> None:
        if self.writer is None:
            return
        if self._due(self.cfg.log.log_every):
            now = time.monotonic()
            for k, v in scalars.items():
                self.writer.add_scalar(f"train/{k}", v, self.step)
            self.writer.add_scalar("train/skipped_steps", self.skipped, self.step)
            if self.blur_scales is not None:
                log_scale = self.blur_scales.log_scale.detach()
                factors = log_scale.exp()
                for name, value in (("mean", factors.mean()), ("min", factors.min()), ("max", factors.max())):
                    self.writer.add_scalar(f"blur_scale/{name}", float(value), self.step)
                self.writer.add_histogram("blur_scale/log_scale", log_scale.cpu(), self.step)
            if self._rate_mark is not None and now > self._rate_mark[1]:
                rate = (self.step - self._rate_mark[0]) / (now - self._rate_mark[1])
                self.writer.add_scalar("train/it_per_s", rate, self.step)
            self._rate_mark = (self.step, now)
        if images and self._images is not None:
            self.log_images(*self._images, tag="train")
            self._images = None

    @torch.no_grad()
    def log_images(
        self,
        inputs: dict[str, torch.Tensor],
        outputs: dict[str, torch.Tensor],
        render: torch.Tensor,
        tag: str,
    ) -> None:
        """TensorBoard grids of the first sample: input slices over re-rendered slices, AIF, depth.

        Args:
            inputs: ``batch["inputs"]``; outputs: :func:`predict_depth` output; render: (B, S, 3, H, W)
                slices re-rendered from the predicted AIF and depth; tag: "train" or "val".
        """
        if self.writer is None:
            return
        rows = [torch.cat(list(x[0].float().clamp(0, 1)), dim=2) for x in (inputs["stack"], render)]
        slices = torch.cat(rows, dim=1)
        self.writer.add_image(f"{tag}/slices_input_over_rerendered", slices.cpu(), self.step)
        self.writer.add_image(f"{tag}/aif", outputs["aif"][0].clamp(0, 1).cpu(), self.step)
        depth = outputs["depth_m"][0, 0].cpu().numpy().astype(np.float32)
        self.writer.add_image(f"{tag}/depth", colorize_depth(depth), self.step, dataformats="HWC")

    # ----------------------------------------------------------------- validation

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Self-supervised loss on the validation set, plus GT depth metrics where GT exists (rank 0).

        With ``data.estimate_blur_scale``, validation scenes use the factor learned for the training scene
        of the same name, and 1 (the nominal camera) when there is none.

        Returns:
            ``{"loss/<term>": mean, "<metric>": mean over images with GT, ...}``; empty without a
            validation set or on ranks other than 0.
        """
        self.val_step = self.step
        if self.val_set is None or not self.ctx.is_main:
            return {}
        self.model.eval()
        sums: dict[str, float] = {}
        metrics: dict[str, list[float]] = {k: [] for k in VAL_METRICS}
        n = 0
        factors = None
        if self.blur_scales is not None:
            names = getattr(self.val_set, "scene_names", None)
            factors = self.blur_scales.factors_for(names, len(self.val_set))
        for i, batch in enumerate(self._loader(self.val_set)):
            inputs = to_device(batch["inputs"], self.ctx.device)
            outputs = predict_depth(self.model, inputs, self.amp)
            index = inputs.get(SCENE_INDEX)
            blur = None if factors is None or index is None else pick_factors(factors, index)
            result = self_supervised_losses_detailed(
                loss_inputs(inputs),
                {"aif": outputs["aif"], "depth_m": outputs["depth_m"]},
                self.loss_config(),
                blur_scale=blur,
            )
            for k, v in result.terms.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            n += 1
            gt = batch["targets"]["depth_m"]
            if bool(batch["targets"]["has_depth"][0]) and bool((gt > 0).any()):
                m = depth_metrics(outputs["depth_m"].cpu(), gt, focus_m=batch["inputs"]["focus_m"][0])
                for k in VAL_METRICS:
                    metrics[k].append(m[k])
            if i == 0 and self.cfg.log.image_every > 0:
                self.log_images(inputs, outputs, result.render, tag="val")
        out = {f"loss/{k}": v / n for k, v in sums.items()}
        out.update({k: float(np.mean(v)) for k, v in metrics.items() if v})
        if self.writer is not None:
            for k, v in out.items():
                self.writer.add_scalar(f"val/{k}", v, self.step)
        summary = ", ".join(f"{k} {v:.4g}" for k, v in out.items() if k in ("loss/total", *VAL_METRICS))
        self._info(f"step {self.step} validation: {summary}")
        if out["loss/total"] < self.best_val:
            self.best_val = out["loss/total"]
            self.save("best.pt")
        return out

    # ----------------------------------------------------------------- checkpoints

    def save(self, name: str | None = None) -> Path | None:
        """Write ``last.pt`` (and ``step_NNNNNNN.pt`` at ``keep_every``), or ``name``; rank 0 only."""
        if not self.ctx.is_main:
            return None
        extra: dict[str, Any] = {"skipped": self.skipped, "best_val": self.best_val}
        if self.blur_scales is not None:  # keyed by scene name: survives a reordering of the scenes
            extra["blur_log_scales"] = self.blur_scales.state_by_name()
        state = {
            "model": self.model,
            "config": self.cfg,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "scaler": self.scaler,
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "extra": extra,
        }
        if name is not None:
            return save_checkpoint(self.out / name, **state)
        if self._due(self.cfg.log.keep_every):
            save_checkpoint(self.out / f"step_{self.step:07d}.pt", **state)
        return save_checkpoint(self.out / LAST, **state)

    def close(self) -> None:
        """Release the TensorBoard writer and leave the process group."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        distributed.cleanup(self.ctx)
