from __future__ import annotations

from pathlib import Path

import pytest
import tyro
import yaml

from focalstack.cli import main
from focalstack.cli.train import TrainCommand
from focalstack.train.checkpoint import load_checkpoint
from focalstack.train.presets import get_preset
from tests.train.test_trainer import one_thread, scenes  # noqa: F401 (fixtures)

TINY = [
    "--model.width",
    "4",
    "--model.depth",
    "2",
    "--crop",
    "32",
    "--num-slices",
    "3",
    "--batch-size",
    "2",
    "--log.tensorboard",
    "False",
    "--log.progress",
    "False",
    "--device",
    "cpu",
]


def resolve(args: list[str]):
    return tyro.cli(TrainCommand, args=args).resolve()


def test_preset_then_yaml_then_flags(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("optim: {lr: 0.001}\nmodel: {width: 8}\ndata: {batch_size: 6}\n")
    cfg = resolve(["--config", str(tmp_path / "c.yaml"), "--model.width", "4", "--crop", "64", "--data", "X"])
    assert cfg.optim.lr == 1e-3 and cfg.data.batch_size == 6  # from the YAML
    assert cfg.model.width == 4 and cfg.data.crop == 64 and cfg.data.root == "X"  # flags win
    assert cfg.optim.weight_decay == get_preset("procedural-cpu").optim.weight_decay  # preset default
    paper = resolve(["--preset", "paper-nyu", "--max-steps", "9", "--time-budget-min", "1.5"])
    assert (paper.data.batch_size, paper.max_steps, paper.time_budget_min) == (32, 9, 1.5)


def test_blur_scale_flags() -> None:
    cfg = resolve(["--preset", "tta", "--estimate-blur-scale", "True", "--optim.blur-scale-lr", "0.05"])
    assert cfg.data.estimate_blur_scale and cfg.optim.blur_scale_lr == 0.05
    assert not resolve(["--preset", "tta"]).data.estimate_blur_scale  # off unless asked for


def test_print_config_and_bad_values(capsys) -> None:
    main(["train", "--print-config", "--max-steps", "7", "--optim.betas", "0.8", "0.9"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["max_steps"] == 7 and printed["optim"]["betas"] == [0.8, 0.9]
    with pytest.raises(SystemExit, match="amp: 'fp8' is not one of"):
        main(["train", "--print-config", "--amp", "fp8"])
    with pytest.raises(SystemExit, match="unknown preset"):
        main(["train", "--print-config", "--preset", "nope"])


def test_every_train_setting_has_a_flag(capsys) -> None:
    """Each top-level TrainConfig field is a flag of `focalstack train` (sections are --SECTION.FIELD)."""
    import dataclasses

    from focalstack.cli.train import TrainCommand
    from focalstack.train.config import TrainConfig

    sections = {"model", "loss", "data", "optim", "log"}
    settings = {f.name for f in dataclasses.fields(TrainConfig)} - sections
    assert settings <= {f.name for f in dataclasses.fields(TrainCommand)}
    main(["train", "--print-config", "--focus-prior-fade", "0.3"])
    assert yaml.safe_load(capsys.readouterr().out)["focus_prior_fade"] == 0.3


def test_train_resume_and_refuse_to_overwrite(scenes: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "run"
    main(["train", "--data", str(scenes), "--out", str(out), "--max-steps", "1", *TINY])
    assert load_checkpoint(out)["step"] == 1
    with pytest.raises(SystemExit, match="already holds a run"):
        main(["train", "--data", str(scenes), "--out", str(out), "--max-steps", "1", *TINY])
    # The checkpoint's own config is the base: only the new step count is needed.
    main(["train", "--resume", str(out), "--max-steps", "2"])
    assert load_checkpoint(out)["step"] == 2
    with pytest.raises(SystemExit, match=r"model\.width: 4 != 8"):
        main(["train", "--resume", str(out), "--max-steps", "3", "--model.width", "8"])
