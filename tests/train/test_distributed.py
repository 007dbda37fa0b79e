"""torchrun / DDP: two CPU processes (gloo) must end with identical parameters.

Run as a script, this file is the per-rank worker: ``torchrun ... test_distributed.py ROOT OUT``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from focalstack.train.distributed import DistContext, all_true, any_true, resolve_device, setup


def test_single_process_context_is_world_size_one(monkeypatch) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = setup("cpu")
    assert ctx == DistContext(0, 1, 0, torch.device("cpu"))
    assert ctx.is_main and not ctx.distributed
    assert all_true(True, ctx) and not all_true(False, ctx) and any_true(True, ctx)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        setup("cpu")


def test_cuda_request_without_cuda_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        assert resolve_device("cuda", 0) == torch.device("cuda:0")
    else:
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


def _torchrun(root: Path, out: Path, *args: str) -> None:
    repo = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(p for p in (str(repo / "src"), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        __file__,
        str(root),
        str(out),
        *args,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_torchrun_two_ranks_end_with_identical_parameters(tmp_path: Path) -> None:
    from tests.data.test_dataset import write_scenes

    root = write_scenes(tmp_path / "scenes", 4)
    out = tmp_path / "run"
    _torchrun(root, out)
    params = [(out / f"params_rank{r}.txt").read_text().split() for r in range(2)]
    assert params[0] == params[1] and params[0][1] == "2"  # same weights after the same 2 steps
    batches = [(out / f"batch_rank{r}.txt").read_text() for r in range(2)]
    assert batches[0] != batches[1]  # each rank trained on its own shard of the data
    assert (out / "last.pt").is_file()  # written by rank 0 only
    assert not list(out.glob("*rank1*.pt"))


def test_torchrun_blur_scales_stay_identical_across_ranks(tmp_path: Path) -> None:
    """The per-scene scales live outside DDP: their gradients are averaged by hand."""
    from tests.data.test_dataset import drop_camera_keys, write_scenes

    root = write_scenes(tmp_path / "scenes", 4)
    drop_camera_keys(root / "scene_2", "pixel_size_m")
    out = tmp_path / "run"
    _torchrun(root, out, "estimate")
    params = [(out / f"params_rank{r}.txt").read_text().split() for r in range(2)]
    assert params[0] == params[1] and params[0][1] == "2"
    scales = [(out / f"scales_rank{r}.txt").read_text() for r in range(2)]
    assert scales[0] == scales[1]  # bit-identical on both ranks ...
    assert any(v != 0.0 for v in map(float, scales[0].split()))  # ... and trained
    assert (out / "blur_scales.json").is_file()


def _worker(root: str, out: str, mode: str = "") -> None:
    from focalstack.models import ModelConfig
    from focalstack.train.config import DataConfig, LogConfig, TrainConfig
    from focalstack.train.trainer import Trainer

    cfg = TrainConfig(
        model=ModelConfig(width=4, depth=2),
        data=DataConfig(root=root, crop=32, num_slices=3, batch_size=1),
        log=LogConfig(image_every=0, val_every=0, ckpt_every=0, tensorboard=False, progress=False),
        out=out,
        max_steps=2,
        device="cpu",
    )
    cfg.data.estimate_blur_scale = mode == "estimate"
    trainer = Trainer(cfg)
    assert trainer.ctx.world_size == 2
    trainer.sampler.set_epoch(0)
    first = next(iter(trainer.sampler))
    trainer.fit()
    flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    digest = hashlib.sha256(flat.numpy().tobytes()).hexdigest()
    rank = trainer.ctx.rank
    Path(out).mkdir(parents=True, exist_ok=True)
    Path(out, f"params_rank{rank}.txt").write_text(f"{digest} {trainer.step}")
    Path(out, f"batch_rank{rank}.txt").write_text(str(first))
    if trainer.blur_scales is not None:
        values = trainer.blur_scales.log_scale.detach().tolist()
        Path(out, f"scales_rank{rank}.txt").write_text(" ".join(f"{v!r}" for v in values))
    trainer.close()


if __name__ == "__main__":
    _worker(*sys.argv[1:4])
