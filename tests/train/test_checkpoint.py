from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import focalstack
from focalstack.models import ModelConfig, build_model
from focalstack.train.checkpoint import (
    check_model_compatible,
    default_weights_path,
    load_checkpoint,
    load_model,
    resolve_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from focalstack.train.config import TrainConfig
from tests.train.test_trainer import one_thread  # noqa: F401 (fixture)


def tiny() -> tuple[TrainConfig, torch.nn.Module]:
    cfg = TrainConfig(model=ModelConfig(width=4, depth=2))
    return cfg, build_model(cfg.model)


def test_checkpoint_round_trip_and_contents(tmp_path: Path) -> None:
    cfg, model = tiny()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5)
    path = save_checkpoint(
        tmp_path / "run" / "last.pt",
        model=model,
        config=cfg,
        optimizer=opt,
        scheduler=sched,
        step=7,
        epoch=2,
        batch_in_epoch=3,
    )
    ckpt = load_checkpoint(tmp_path / "run")  # a run folder resolves to its last.pt
    assert ckpt["path"] == str(path)
    assert (ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]) == (7, 2, 3)
    assert ckpt["focalstack_version"] == focalstack.__version__
    assert ckpt["config"]["model"] == {"name": "daifnet", "width": 4, "depth": 2}
    assert ckpt["normalization"]["range_margin"] == cfg.data.range_margin
    assert {"optimizer", "scheduler", "rng"} <= set(ckpt)
    # Only tensors and plain data: loadable without unpickling arbitrary objects.
    torch.load(path, weights_only=True)


def test_load_model_rebuilds_the_network_from_the_checkpoint_alone(tmp_path: Path) -> None:
    cfg, model = tiny()
    save_checkpoint(tmp_path / "w.pt", model=model, config=cfg)
    loaded, loaded_cfg = load_model(tmp_path / "w.pt", device="cpu")
    assert loaded_cfg == cfg and not loaded.training
    stack, u = torch.rand(1, 3, 3, 16, 16), torch.tensor([[0.1, 0.5, 0.9]])
    with torch.no_grad():
        a, b = model.eval()(stack, u), loaded(stack, u)
    assert torch.equal(a["t"], b["t"]) and torch.equal(a["aif"], b["aif"])


def test_load_model_tolerates_config_keys_of_other_versions(tmp_path: Path) -> None:
    cfg, model = tiny()
    save_checkpoint(tmp_path / "w.pt", model=model, config=cfg)
    ckpt = torch.load(tmp_path / "w.pt", weights_only=True)
    ckpt["config"]["loss"]["weight_from_the_future"] = 1.0
    torch.save(ckpt, tmp_path / "w.pt")
    with pytest.warns(UserWarning, match="weight_from_the_future"):
        _, loaded_cfg = load_model(tmp_path / "w.pt")
    assert loaded_cfg.model == cfg.model


def test_incompatible_model_names_every_differing_field() -> None:
    with pytest.raises(ValueError, match=r"model\.width: 4 != 8; model\.depth: 2 != 3"):
        check_model_compatible(ModelConfig(width=4, depth=2), ModelConfig(width=8, depth=3))
    check_model_compatible(ModelConfig(), ModelConfig())  # equal: no error


def test_bad_checkpoint_paths_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a readable focalstack checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match=r"not a focalstack checkpoint \(missing"):
        load_checkpoint(tmp_path / "foreign.pt")
    assert default_weights_path().name == "default.pt"
    if not default_weights_path().is_file():
        with pytest.raises(FileNotFoundError, match="default.pt"):
            resolve_checkpoint("default")


def test_rng_state_round_trip() -> None:
    state = rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002 (global RNG on purpose)
    set_rng_state(state)
    second = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1]) and first[2] == second[2]
