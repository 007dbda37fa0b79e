"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FOCALSTACK_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (third-party test data); the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def small_noise_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Benchmarks' fits use 64 px sweep noise references (the default, 256 px, costs seconds per tiny fit).

    Patches ``benchmarks.fit_procedural.fit_config``, which every fitting benchmark builds its config with;
    the original stays reachable as its ``__wrapped__``.
    """
    import functools

    import benchmarks.edge_analysis
    import benchmarks.fit_procedural
    import benchmarks.noise_analysis
    import benchmarks.range_coverage

    real = benchmarks.fit_procedural.fit_config

    @functools.wraps(real)
    def small(iterations: int, changes: dict):
        return real(iterations, {"noise_reference_px": 64, **changes})

    modules = (benchmarks.fit_procedural, benchmarks.edge_analysis, benchmarks.noise_analysis)
    for module in (*modules, benchmarks.range_coverage):
        monkeypatch.setattr(module, "fit_config", small)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    # `make test` runs two xdist workers on two cores: more threads per worker only contend.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights-only checkpoint of a small random DAIF-Net (width 4, depth 2)."""
    from focalstack.models import ModelConfig, build_model
    from focalstack.train.checkpoint import save_checkpoint
    from focalstack.train.config import TrainConfig

    torch.manual_seed(0)
    cfg = TrainConfig(model=ModelConfig(width=4, depth=2))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    return save_checkpoint(path, model=build_model(cfg.model), config=cfg)
