from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest
import torch

from focalstack.data.dataset import SceneFolderDataset
from focalstack.losses import INPUT_KEYS
from focalstack.models import ModelConfig
from focalstack.train import trainer as trainer_module
from focalstack.train.checkpoint import load_checkpoint
from focalstack.train.config import DataConfig, LogConfig, TrainConfig, from_dict, load_yaml
from focalstack.train.trainer import BLUR_SCALES_JSON, Trainer, prior_fade_factor
from tests.data.test_dataset import drop_camera_keys, write_scenes

QUIET = LogConfig(log_every=0, image_every=0, val_every=0, ckpt_every=0, tensorboard=False, progress=False)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: on a busy 2-core machine a second intra-op thread only adds contention (~5x)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four tiny 40x48, 5-slice scene folders with ground truth."""
    return write_scenes(tmp_path_factory.mktemp("scenes"), 4)


@pytest.fixture(scope="module")
def phone_scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four tiny scene folders; scene_1 lacks the pixel pitch, scene_3 the whole camera."""
    root = write_scenes(tmp_path_factory.mktemp("phone"), 4)
    drop_camera_keys(root / "scene_1", "pixel_size_m")
    drop_camera_keys(root / "scene_3", "pixel_size_m", "f_number", "focal_length_m")
    return root


def tiny_config(root: Path, out: Path, **changes) -> TrainConfig:
    """Width-4 / depth-2 network on 32^2 crops, batch 2 x 3 slices, no logging."""
    cfg = TrainConfig(
        model=ModelConfig(width=4, depth=2),
        data=DataConfig(root=str(root), crop=32, num_slices=3, batch_size=2),
        log=dataclasses.replace(QUIET),
        out=str(out),
        max_steps=3,
        device="cpu",
    )
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


def params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def first_batch(trainer: Trainer) -> dict:
    trainer.sampler.set_epoch(0)
    return next(iter(trainer._loader(trainer.train_set, trainer.sampler)))


def test_fit_trains_logs_and_writes_run_folder(scenes: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(scenes, tmp_path / "run", max_steps=2)
    cfg.log = LogConfig(log_every=1, image_every=2, val_every=0, ckpt_every=0, progress=False)
    trainer = Trainer(cfg)
    before = params(trainer.model)
    summary = trainer.fit()
    assert summary["steps"] == 2 and summary["skipped_steps"] == 0
    assert all(torch.isfinite(torch.tensor(v)) for v in summary["train"].values())
    assert set(summary["train"]) >= {"recon", "aif", "sharpness", "smooth", "total", "lr", "grad_norm"}
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert from_dict(TrainConfig, load_yaml(tmp_path / "run" / "config.yaml")) == cfg
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["step"] == 2 and ckpt["config"]["model"]["width"] == 4

    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    scalars, images = set(events.Tags()["scalars"]), set(events.Tags()["images"])
    assert {"train/total", "train/recon", "train/smooth", "train/lr", "train/it_per_s"} <= scalars
    assert {"train/slices_input_over_rerendered", "train/aif", "train/depth"} <= images


def test_resume_continues_exactly(scenes: Path, tmp_path: Path) -> None:
    """3 steps in one go == 1 step, a new Trainer resuming mid-epoch, and 2 more (into the next epoch)."""
    cfg = tiny_config(scenes, tmp_path / "a", max_steps=3)
    cfg.data.min_slices = 2  # the per-batch slice count must resume too
    ref = Trainer(cfg)
    ref.fit()

    cfg_b = tiny_config(scenes, tmp_path / "b", max_steps=3)
    cfg_b.data.min_slices = 2
    Trainer(cfg_b).fit(steps=1)
    torch.manual_seed(1234)  # a fresh process would not share the RNG state either
    resumed = Trainer(cfg_b, resume=tmp_path / "b")
    assert (resumed.step, resumed.epoch, resumed.batch_in_epoch) == (1, 0, 1)
    resumed.fit()
    assert resumed.step == 3 and resumed.epoch == 1
    for a, b in zip(ref.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert ref.optimizer.param_groups[0]["lr"] == pytest.approx(resumed.optimizer.param_groups[0]["lr"])


def test_non_finite_batch_skips_the_update(scenes: Path, tmp_path: Path, caplog) -> None:
    trainer = Trainer(tiny_config(scenes, tmp_path / "run"))
    batch = first_batch(trainer)
    bad = {"inputs": dict(batch["inputs"]), "targets": batch["targets"]}
    bad["inputs"]["stack"] = batch["inputs"]["stack"].clone()
    bad["inputs"]["stack"][0, 0, 0, 5, 5] = float("nan")
    before = params(trainer.model)
    with caplog.at_level(logging.WARNING, logger="focalstack.train"):
        out = trainer.train_step(bad)
    assert out["skipped"] == 1.0 and trainer.skipped == 1
    assert "update skipped" in caplog.text
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    out = trainer.train_step(batch)  # training carries on
    assert out["skipped"] == 0.0 and trainer.skipped == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


def test_ground_truth_never_reaches_the_loss(scenes: Path, tmp_path: Path, monkeypatch) -> None:
    seen = []
    real = trainer_module.self_supervised_losses_detailed

    def spy(inputs, outputs, cfg, **kw):
        seen.append((set(inputs), set(outputs)))
        return real(inputs, outputs, cfg, **kw)

    monkeypatch.setattr(trainer_module, "self_supervised_losses_detailed", spy)
    trainer = Trainer(tiny_config(scenes, tmp_path / "run"))
    batch = first_batch(trainer)
    assert bool(batch["targets"]["has_depth"].all())  # the batch does carry ground truth ...
    trainer.train_step(batch)
    assert seen == [(set(INPUT_KEYS), {"aif", "depth_m"})]  # ... but the loss only sees the inputs


def test_validation_reports_loss_and_gt_metrics(scenes: Path, tmp_path: Path) -> None:
    val = SceneFolderDataset(scenes, crop=None, num_slices=None, augment=False)
    trainer = Trainer(tiny_config(scenes, tmp_path / "run"), val_set=val)
    out = trainer.validate()
    assert {"loss/total", "loss/recon", "absrel", "delta1", "rmse", "error_slices"} <= set(out)
    assert 0.0 <= out["delta1"] <= 1.0 and out["absrel"] > 0
    assert (tmp_path / "run" / "best.pt").is_file()


def test_init_adopts_checkpoint_model_and_resume_rejects_mismatch(scenes: Path, tmp_path: Path) -> None:
    src = Trainer(tiny_config(scenes, tmp_path / "src", max_steps=1))
    src.fit()
    cfg = tiny_config(scenes, tmp_path / "tta", init=str(tmp_path / "src" / "last.pt"))
    cfg.model = ModelConfig(width=8, depth=2)
    tta = Trainer(cfg)
    assert tta.cfg.model == ModelConfig(width=4, depth=2)  # the weights define the architecture
    for a, b in zip(src.model.parameters(), tta.model.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match=r"model\.width: 4 != 8"):
        Trainer(cfg, resume=tmp_path / "src")


def test_time_budget_stops_with_a_checkpoint(scenes: Path, tmp_path: Path) -> None:
    cfg = tiny_config(scenes, tmp_path / "run", max_steps=50, time_budget_min=1e-5)
    summary = Trainer(cfg).fit()
    assert summary["steps"] == 1
    assert load_checkpoint(tmp_path / "run")["step"] == 1


def test_schedule_anneals_to_the_time_budget(
    scenes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With anneal_to_budget the cosine follows the clock: half the budget gone = half the schedule."""
    from focalstack.train import trainer as trainer_module

    # A frozen clock: the step's own run time (slow on a loaded CI machine) must not move the schedule.
    monkeypatch.setattr(trainer_module.time, "monotonic", lambda: 1000.0)
    cfg = tiny_config(scenes, tmp_path / "run", max_steps=10_000, time_budget_min=1.0)
    cfg.optim.anneal_to_budget = True
    trainer = Trainer(cfg)
    trainer._fit_start = 1000.0 - 30.0  # as if fit() had started 30 s ago
    trainer.train_step(first_batch(trainer))
    # 30 s of a 1-min budget: the cosine is halfway although only 1 of 10000 steps is done
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(cfg.optim.lr * 0.5, rel=2e-2)
    cfg.optim.anneal_to_budget = False  # without it, the step count alone sets the schedule
    trainer = Trainer(cfg)
    trainer._fit_start = 1000.0 - 30.0
    trainer.train_step(first_batch(trainer))
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(cfg.optim.lr, rel=1e-3)


def test_focus_prior_fades_to_zero(scenes: Path, tmp_path: Path) -> None:
    """focus_prior_fade 0.5: full weight at step 0, half at a quarter, gone from halfway on."""
    assert prior_fade_factor(0.3, 0.0) == 1.0  # no fade: constant weight
    assert [prior_fade_factor(p, 0.5) for p in (0.0, 0.25, 0.5, 0.9)] == pytest.approx([1, 0.5, 0, 0])
    cfg = tiny_config(scenes, tmp_path / "run", max_steps=8, focus_prior_fade=0.5)
    cfg.loss = dataclasses.replace(cfg.loss, focus_prior_weight=100.0)
    trainer = Trainer(cfg)
    weights, priors = [], []
    for batch in trainer._batches(stop_step=6):
        weights.append(trainer.loss_config().focus_prior_weight)
        priors.append(trainer.train_step(batch).get("focus_prior"))
        if trainer.step == 6:
            break
    assert weights == pytest.approx([100 * prior_fade_factor(s / 8, 0.5) for s in range(6)])
    assert priors[0] > 0 and priors[-1] is None  # weight 0: the term is not computed at all
    assert cfg.loss.focus_prior_weight == 100.0  # the configured (saved) weight is untouched
    with pytest.raises(ValueError, match="focus_prior_fade"):
        tiny_config(scenes, tmp_path / "bad", focus_prior_fade=1.5).validate()


def test_amp_on_cpu_falls_back_to_float32(scenes: Path, tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="focalstack.train"):
        trainer = Trainer(tiny_config(scenes, tmp_path / "run", amp="bf16"))
    assert trainer.amp is None and "needs CUDA" in caplog.text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp", ["none", "bf16", "fp16"])
def test_cuda_training_with_mixed_precision(scenes: Path, tmp_path: Path, amp: str) -> None:
    cfg = tiny_config(scenes, tmp_path / "run", device="cuda", amp=amp, max_steps=6)
    trainer = Trainer(cfg)
    before = params(trainer.model)
    summary = trainer.fit()
    assert summary["steps"] == 6
    # float16 may skip a step while the gradient scaler settles; the others never skip.
    assert summary["skipped_steps"] <= (2 if amp == "fp16" else 0)
    assert next(trainer.model.parameters()).device.type == "cuda"
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    resumed = Trainer(cfg, resume=tmp_path / "run")  # checkpoints (with the scaler state) load on CUDA
    assert resumed.step == 6 and resumed.scaler.get_scale() == trainer.scaler.get_scale()


# ----------------------------------------------------------------- per-scene blur scales


def estimating(root: Path, out: Path, **changes) -> TrainConfig:
    cfg = tiny_config(root, out, **changes)
    cfg.data.estimate_blur_scale = True
    return cfg


def test_incomplete_cameras_need_the_option(phone_scenes: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"(?s)scene_1: incomplete camera.*estimate_blur_scale"):
        Trainer(tiny_config(phone_scenes, tmp_path / "off"))
    trainer = Trainer(estimating(phone_scenes, tmp_path / "on"))
    assert trainer.blur_scales.names == ["scene_0", "scene_1", "scene_2", "scene_3"]


def test_blur_scales_train_jointly_and_are_logged(phone_scenes: Path, tmp_path: Path, monkeypatch) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = estimating(phone_scenes, tmp_path / "run", max_steps=3)
    cfg.log = LogConfig(log_every=1, image_every=0, val_every=0, ckpt_every=0, progress=False)
    trainer = Trainer(cfg)
    group = trainer.optimizer.param_groups[1]  # their own group: own lr, no weight decay
    assert group["params"] == [trainer.blur_scales.log_scale]
    assert (group["lr"], group["weight_decay"]) == (cfg.optim.blur_scale_lr, 0.0)
    seen = []
    real = trainer_module.self_supervised_losses_detailed

    def spy(inputs, outputs, cfg, **kw):
        seen.append((set(inputs), kw["blur_scale"].detach().clone()))
        return real(inputs, outputs, cfg, **kw)

    monkeypatch.setattr(trainer_module, "self_supervised_losses_detailed", spy)
    batch = first_batch(trainer)
    index = batch["inputs"]["scene_index"]
    trainer.train_step(batch)
    assert seen[0][0] == set(INPUT_KEYS)  # scene_index selects the factors but never reaches the loss
    assert seen[0][1].shape == (2,) and torch.equal(seen[0][1], torch.ones(2))  # factor 1 at the start
    grad = trainer.blur_scales.log_scale.grad
    used = torch.zeros(4, dtype=torch.bool).index_fill(0, index, True)
    assert bool((grad[used] != 0).all()) and bool((grad[~used] == 0).all())
    summary = trainer.fit()
    factors = trainer.blur_scales.factors()
    assert any(v != 1.0 for v in factors.values())  # the scales moved
    assert summary["blur_scales"] == factors
    assert json.loads((tmp_path / "run" / BLUR_SCALES_JSON).read_text()) == pytest.approx(factors)
    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    assert {"blur_scale/mean", "blur_scale/min", "blur_scale/max"} <= set(events.Tags()["scalars"])


def test_resume_restores_blur_scales_exactly(phone_scenes: Path, tmp_path: Path) -> None:
    """3 steps in one go == 1 step + resume + 2 steps, for the network and the blur scales."""
    ref = Trainer(estimating(phone_scenes, tmp_path / "a", max_steps=3))
    ref.fit()
    Trainer(estimating(phone_scenes, tmp_path / "b", max_steps=3)).fit(steps=1)
    ckpt = load_checkpoint(tmp_path / "b")
    assert list(ckpt["blur_log_scales"]) == ["scene_0", "scene_1", "scene_2", "scene_3"]
    torch.manual_seed(1234)
    resumed = Trainer(estimating(phone_scenes, tmp_path / "b", max_steps=3), resume=tmp_path / "b")
    assert resumed.blur_scales.state_by_name() == ckpt["blur_log_scales"]
    resumed.fit()
    torch.testing.assert_close(ref.blur_scales.log_scale, resumed.blur_scales.log_scale, rtol=0, atol=1e-6)
    for a, b in zip(ref.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_resume_refuses_to_toggle_estimation(scenes: Path, tmp_path: Path) -> None:
    Trainer(estimating(scenes, tmp_path / "on", max_steps=1)).fit()  # complete cameras get scales too
    with pytest.raises(ValueError, match="trained with data.estimate_blur_scale"):
        Trainer(tiny_config(scenes, tmp_path / "on"), resume=tmp_path / "on")
    Trainer(tiny_config(scenes, tmp_path / "off", max_steps=1)).fit()
    with pytest.raises(ValueError, match="trained without data.estimate_blur_scale"):
        Trainer(estimating(scenes, tmp_path / "off"), resume=tmp_path / "off")


def test_blur_scales_resume_by_scene_name(phone_scenes: Path, tmp_path: Path) -> None:
    """A new scene sorting first shifts every index: values and Adam moments follow the names."""
    old = Trainer(estimating(phone_scenes, tmp_path / "run", max_steps=4))
    old.fit(steps=2)
    root = tmp_path / "more"
    root.mkdir()
    for name in old.blur_scales.names:
        (root / name).symlink_to(phone_scenes / name, target_is_directory=True)
    write_scenes(tmp_path / "new", 1)
    (root / "a_new").symlink_to(tmp_path / "new" / "scene_0", target_is_directory=True)
    new = Trainer(estimating(root, tmp_path / "run", max_steps=4), resume=tmp_path / "run")
    assert new.blur_scales.names == ["a_new", *old.blur_scales.names]
    assert new.blur_scales.factors() == pytest.approx({"a_new": 1.0, **old.blur_scales.factors()})
    old_state = old.optimizer.state[old.blur_scales.log_scale]
    new_state = new.optimizer.state[new.blur_scales.log_scale]
    for key in ("exp_avg", "exp_avg_sq"):
        assert new_state[key][0] == 0 and torch.equal(new_state[key][1:], old_state[key])
    assert new.train_step(first_batch(new))["skipped"] == 0.0


def test_validation_uses_the_scale_of_the_scene_with_that_name(
    phone_scenes: Path, tmp_path: Path, monkeypatch
) -> None:
    val = SceneFolderDataset(phone_scenes, None, None, augment=False, estimate_blur_scale=True)
    trainer = Trainer(estimating(phone_scenes, tmp_path / "run"), val_set=val)
    with torch.no_grad():
        trainer.blur_scales.log_scale.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    seen = []
    real = trainer_module.self_supervised_losses_detailed

    def spy(inputs, outputs, cfg, **kw):
        seen.append(kw["blur_scale"])
        return real(inputs, outputs, cfg, **kw)

    monkeypatch.setattr(trainer_module, "self_supervised_losses_detailed", spy)
    assert "loss/total" in trainer.validate()
    torch.testing.assert_close(torch.cat(seen), torch.tensor([0.1, 0.2, 0.3, 0.4]).exp())


def test_estimation_needs_scene_folders() -> None:
    cfg = TrainConfig(data=DataConfig(root="procedural", estimate_blur_scale=True))
    with pytest.raises(ValueError, match="data.root must be scene folders"):
        cfg.validate()
