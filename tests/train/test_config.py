from __future__ import annotations

import math
from pathlib import Path

import pytest

from focalstack.models import ModelConfig
from focalstack.train.config import (
    OptimConfig,
    TrainConfig,
    diff,
    from_dict,
    load_yaml,
    merge,
    save_yaml,
    to_dict,
)
from focalstack.train.presets import PRESETS, get_preset
from focalstack.train.trainer import lr_factor


def test_yaml_round_trip_restores_types(tmp_path: Path) -> None:
    cfg = get_preset("paper-nyu")
    cfg.optim.betas = (0.8, 0.95)
    cfg.time_budget_min = 3.5
    save_yaml(cfg, tmp_path / "c.yaml")
    back = from_dict(TrainConfig, load_yaml(tmp_path / "c.yaml"))
    assert back == cfg
    assert isinstance(back.optim.betas, tuple) and isinstance(back.data.procedural.size, tuple)


def test_partial_overrides_merge_and_coerce() -> None:
    cfg = merge(TrainConfig(), {"optim": {"lr": 1}, "model": {"width": 8}, "amp": "bf16"})
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.model == ModelConfig(width=8) and cfg.amp == "bf16"
    assert cfg.optim.weight_decay == 5e-4  # untouched fields keep their values


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"optim": {"lrr": 1e-3}}, r"optim\.lrr"),
        ({"bogus": 1}, r"\['bogus'\]"),
        ({"max_steps": "ten"}, r"max_steps: expected int"),
        ({"max_steps": True}, r"max_steps: expected int"),
        ({"amp": "fp8"}, r"amp: 'fp8' is not one of"),
        ({"optim": {"betas": [0.9]}}, r"optim\.betas: expected 2 values"),
        ({"model": 3}, r"model: expected a mapping"),
    ],
)
def test_bad_config_values_name_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        merge(TrainConfig(), overrides)


def test_lenient_loading_drops_unknown_keys_with_a_warning() -> None:
    data = to_dict(TrainConfig())
    data["loss"]["retired_weight"] = 3.0
    with pytest.warns(UserWarning, match=r"loss\.retired_weight"):
        cfg = from_dict(TrainConfig, data, strict=False)
    assert cfg == TrainConfig()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_round_trip(name: str) -> None:
    cfg = get_preset(name)
    cfg.validate()
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg
    assert get_preset(name) is not cfg  # a fresh copy each time


def test_paper_presets_follow_the_paper() -> None:
    cfg = get_preset("paper-nyu")
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.schedule) == (5e-4, 5e-4, "cosine")
    assert (cfg.data.batch_size, cfg.data.crop, cfg.model.width, cfg.model.depth) == (32, 256, 16, 4)
    with pytest.raises(ValueError, match="available"):
        get_preset("paper-kitti")


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_steps", 0), ("time_budget_min", -1.0)],
)
def test_validate_rejects_bad_top_level_values(field: str, value) -> None:
    cfg = TrainConfig()
    setattr(cfg, field, value)
    with pytest.raises(ValueError, match=field):
        cfg.validate()


def test_validate_rejects_bad_section_values() -> None:
    cases = [
        ("data", "batch_size", 0),
        ("data", "crop", 256),  # larger than the procedural scenes
        ("data", "num_slices", 6),  # more than the procedural scenes have
        ("data", "min_slices", 1),
        ("optim", "lr", 0.0),
        ("log", "val_every", -1),
    ]
    for section, field, value in cases:
        cfg = TrainConfig()
        setattr(getattr(cfg, section), field, value)
        with pytest.raises(ValueError, match=rf"{section}\.{field}"):
            cfg.validate()


def test_diff_lists_changed_fields() -> None:
    assert diff(ModelConfig(width=16), ModelConfig(width=8), "model") == ["model.width: 16 != 8"]
    assert diff(TrainConfig(), TrainConfig()) == []


def test_lr_schedule_warmup_cosine_and_floor() -> None:
    cfg = OptimConfig(warmup_steps=4, min_lr_ratio=0.1)
    assert [lr_factor(s, cfg, 104) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lr_factor(4, cfg, 104) == pytest.approx(1.0)
    assert lr_factor(54, cfg, 104) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway through the cosine
    assert lr_factor(104, cfg, 104) == pytest.approx(0.1)
    assert lr_factor(500, cfg, 104) == pytest.approx(0.1)  # stays at the floor past the end
    factors = [lr_factor(s, cfg, 104) for s in range(4, 105)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))
    const = OptimConfig(schedule="constant")
    assert lr_factor(0, const, 10) == lr_factor(9, const, 10) == 1.0
    assert math.isclose(lr_factor(0, OptimConfig(), 10), 1.0)
    # a time budget ahead of the step count advances the cosine (never slows it)
    assert lr_factor(10, cfg, 104, time_progress=0.5) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(54, cfg, 104, time_progress=0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(10, cfg, 104, time_progress=1.5) == pytest.approx(0.1)
    bad = TrainConfig()
    bad.optim.anneal_to_budget = True
    with pytest.raises(ValueError, match="anneal_to_budget"):
        bad.validate()
