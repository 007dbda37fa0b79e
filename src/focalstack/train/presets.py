"""Named training presets: the paper's settings and a small, fast CPU default.

A preset is a complete :class:`~focalstack.train.config.TrainConfig`; a YAML file and command-line
flags then override individual fields (``focalstack train --preset paper-nyu --data DIR``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from focalstack.losses import NOISE_TOLERANT_SSIM_RANGE, LossConfig
from focalstack.models import ModelConfig
from focalstack.train.config import DataConfig, LogConfig, OptimConfig, TrainConfig

DEFAULT_PRESET = "procedural-cpu"


def procedural_cpu() -> TrainConfig:
    """Procedural scenes generated on the fly, sized for a laptop CPU (batch 4 x 5 slices x 128^2)."""
    return TrainConfig(
        model=ModelConfig(width=16, depth=4),
        # One loader worker makes the next scenes while the main process trains.
        data=DataConfig(root="procedural", crop=128, num_slices=5, batch_size=4, num_workers=1),
        log=LogConfig(log_every=10, image_every=250, val_every=500, ckpt_every=250),
        out="runs/procedural-cpu",
        max_steps=2000,
    )


def shipped_loss() -> LossConfig:
    """The shipped recipe's losses: the paper's weights, plus a noise-tolerant SSIM (range 10),
    re-rendering in linear light, and a focus prior whose target is the depth sweep.

    - SSIM range 10: with standard SSIM, sensor noise made the re-rendering loss of the true depth
      clearly higher than that of depths sitting on the slices (``python -m benchmarks.fit_procedural``).
    - Linear light: the data (procedural scenes, real optics) is blurred in linear light; per-scene fits
      improved on every metric of three validation scene sets with it (same benchmark).
    - Focus prior towards the depth sweep (:func:`~focalstack.losses.depth_sweep` with the predicted
      AIF): the per-pixel global optimum of the reconstruction term, which gradient descent does not
      find by itself. Used with ``focus_prior_fade`` 0.5 in :func:`shipped` so that the second half of
      training answers to the re-rendering loss alone. Learning benchmark (``python -m
      benchmarks.train_procedural``, 10 CPU minutes, fresh scenes): delta1 / AbsRel / slices 0.850 /
      0.122 / 0.399; on a re-augmented pool of 128 scenes 0.813 / 0.152 / 0.430, against 0.779 / 0.211 /
      0.492 for the previous recipe (sRGB, DFF-target prior held constant) on that pool.
    """
    return LossConfig(
        ssim_range=NOISE_TOLERANT_SSIM_RANGE,
        linear_light=True,
        focus_prior_weight=200.0,
        focus_prior_target="sweep",
    )


def shipped() -> TrainConfig:
    """The recipe of the shipped weights (``focalstack/weights/default.pt``): slice-attention DAIF-Net,
    width 8, procedural scenes on the fly, 96^2 crops with 3-5 slices, the losses of
    :func:`shipped_loss` with the focus prior fading out over the first half; 1800 steps (about 12 min
    on the idle 2-core CPU)."""
    cfg = procedural_cpu()
    cfg.model = ModelConfig(name="daifnet-attn", width=8, depth=4)
    cfg.loss = shipped_loss()
    cfg.focus_prior_fade = 0.5
    cfg.data.crop, cfg.data.min_slices = 96, 3
    cfg.log.val_every = 600
    cfg.out, cfg.max_steps, cfg.time_budget_min, cfg.threads, cfg.seed = "runs/shipped", 1800, 28.0, 1, 0
    return cfg


def _paper(root: str, out: str, max_steps: int) -> TrainConfig:
    """The paper's recipe: DAIF-Net width 16 / depth 4, AdamW 5e-4 / 5e-4, cosine, batch 32, 256^2."""
    return TrainConfig(
        model=ModelConfig(width=16, depth=4),
        loss=LossConfig(),  # the paper code's weights
        data=DataConfig(root=root, crop=256, num_slices=5, batch_size=32, num_workers=4),
        optim=OptimConfig(lr=5e-4, weight_decay=5e-4, schedule="cosine", grad_clip=0.0),
        log=LogConfig(log_every=50, image_every=1000, val_every=2000, ckpt_every=1000),
        out=out,
        max_steps=max_steps,
    )


def paper_nyu() -> TrainConfig:
    """NYUv2 synthetic 5-slice stacks (N=8, f=50 mm, p=12 um, focus 1-6 m); ~1000 epochs of 795 images.

    Point ``--data`` at the scene folders written by ``focalstack synth`` (each carries its camera).
    """
    return _paper("data/nyuv2_stacks", "runs/paper-nyu", max_steps=25_000)


def paper_defocusnet() -> TrainConfig:
    """DefocusNet re-rendered stacks (N=1.2, f=7.2 mm, p=5.6 um, focus 0.3-1.8 m)."""
    return _paper("data/defocusnet_stacks", "runs/paper-defocusnet", max_steps=25_000)


def tta() -> TrainConfig:
    """Fine-tune the shipped weights on the user's own scenes (``--data DIR``): short, constant lr.

    The losses are the shipped ones with the untruncated renderer (``render_mode="levels"``): real
    stacks can blur beyond the 3 px reach of the 7 x 7 training window (set A of the accuracy
    benchmark: a point at 6 m has blur std 4.3 px in the slice focused at 1 m), where a truncated
    kernel stops changing with depth. Fine-tuning on A's train stacks (4 GPU minutes,
    ``scripts/gpu_ablations.sh`` with ``FINETUNE_A=1``) scored on A test: shipped delta1 / AbsRel /
    slices 0.525 / 0.303 / 1.00; with the 7 x 7 window 0.450 / 0.348 / 1.44; untruncated 0.574 /
    0.284 / 0.77. On the procedural training scenes the two renderers train equally well (same
    script, ablation "untruncated").
    """
    cfg = procedural_cpu()
    cfg.init = "default"
    cfg.loss = dataclasses.replace(shipped_loss(), render_mode="levels")  # shipped, but untruncated
    cfg.data = DataConfig(root="scenes", crop=128, num_slices=5, batch_size=2)
    cfg.optim = OptimConfig(lr=1e-4, schedule="constant", warmup_steps=10)
    cfg.log = LogConfig(log_every=10, image_every=50, val_every=0, ckpt_every=100)
    cfg.out, cfg.max_steps = "runs/tta", 200
    return cfg


PRESETS: dict[str, Callable[[], TrainConfig]] = {
    "procedural-cpu": procedural_cpu,
    "shipped": shipped,
    "paper-nyu": paper_nyu,
    "paper-defocusnet": paper_defocusnet,
    "tta": tta,
}


def get_preset(name: str) -> TrainConfig:
    """A fresh copy of preset ``name``; raises ``ValueError`` listing the names on a typo."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
    return PRESETS[name]()
