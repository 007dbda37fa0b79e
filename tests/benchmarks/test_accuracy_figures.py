from __future__ import annotations

import torch

from benchmarks.accuracy_figures import prune_figures, scene_figure
from focalstack.eval.metrics import depth_metrics
from tests.inference.test_fit import synthetic_stack


def test_scene_figure_lays_out_every_method_and_the_error_in_rows_of_four():
    stack = synthetic_stack(size=32)
    truth = stack.depth_m.float()
    depths = {"exact": truth, "far": torch.full_like(truth, 9.0), "near": torch.full_like(truth, 1.1)}
    scores = {n: depth_metrics(d, stack.depth_m, focus_m=stack.focus_m) for n, d in depths.items()}
    fig = scene_figure(stack, depths, scores)
    # slice, truth, 3 methods, error = 6 tiles -> 2 rows of 4 (32 px + label band each)
    assert fig.dtype.name == "uint8" and fig.shape[2] == 3
    assert fig.shape[1] == 4 * 32 and fig.shape[0] == 2 * (32 + 18)
    error_tile = fig[-32:, 32:64]  # second row: near, error, blank, blank
    assert error_tile.max() == 0  # the best method ("exact") has no error: black


def test_prune_figures_removes_only_unpicked_jpegs(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg", "notes.md"):
        (tmp_path / name).write_bytes(b"x")
    assert prune_figures(tmp_path, {"b.jpg"}) == ["a.jpg", "c.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.jpg", "notes.md"]
