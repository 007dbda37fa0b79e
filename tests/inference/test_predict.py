from __future__ import annotations

import pytest
import torch

from focalstack.data.normalize import working_range_m
from focalstack.inference.predict import load_predictor, predict, predict_full, run_tiled, stack_normalisation
from tests.helpers import make_stack


class Recorder(torch.nn.Module):
    """A 'model' whose output is a known function of the input, to test tiling exactly."""

    def forward(self, stack: torch.Tensor, focus_u: torch.Tensor, focus_m=None) -> dict[str, torch.Tensor]:
        mean = stack.mean(dim=1)
        return {"aif": mean, "t": mean[:, :1]}


def test_predict_shapes_and_units(tiny_checkpoint):
    stack = make_stack()
    depth, aif = predict(stack, checkpoint=tiny_checkpoint)
    assert depth.shape == (40, 52) and aif.shape == (3, 40, 52)
    near, far = working_range_m(stack.focus_m[None]).squeeze(0).tolist()
    assert torch.isfinite(depth).all()
    assert depth.min() >= near * (1 - 1e-5) and depth.max() <= far * (1 + 1e-5)
    assert aif.min() >= 0 and aif.max() <= 1


def test_relative_depth_without_focus(tiny_checkpoint):
    p = predict_full(make_stack(focus=False), checkpoint=tiny_checkpoint)
    assert p.depth_units == "slices" and p.depth_range_m is None
    # slice coordinates lie within the margin-widened slice range
    assert p.depth.min() >= -1.0 - 1e-5 and p.depth.max() <= 4.0 + 1e-5


def test_tiling_matches_single_pass_for_pointwise_model():
    images = torch.rand(3, 3, 70, 90)
    u = torch.rand(1, 3)
    full_aif, full_t = run_tiled(Recorder(), images, u, tile=512)
    tiled_aif, tiled_t = run_tiled(Recorder(), images, u, tile=32, overlap=8)
    torch.testing.assert_close(tiled_aif, full_aif)
    torch.testing.assert_close(tiled_t, full_t)


def test_tiled_network_close_to_single_pass(tiny_checkpoint):
    stack = make_stack(64, 80)
    model = load_predictor(tiny_checkpoint)
    one = predict_full(stack, model=model, tile=512)
    tiled = predict_full(stack, model=model, tile=48, overlap=16)
    # a convolutional net differs only near tile seams; blending keeps the difference small
    assert (one.t - tiled.t).abs().mean() < 0.05


def test_stack_normalisation_ignores_recorded_depth_range():
    """The network sees the working range of the focus distances, as in training, never a GT range."""
    stack = make_stack()
    u, rng, units = stack_normalisation(stack)
    stack.meta["depth_range_m"] = [0.4, 3.0]
    u2, rng2, _ = stack_normalisation(stack)
    assert units == "m" and torch.equal(u, u2) and torch.equal(rng, rng2)
    assert (u > 0).all() and (u < 1).all()


def test_bad_tiling_arguments(tiny_checkpoint):
    with pytest.raises(ValueError, match="tile"):
        predict(make_stack(), checkpoint=tiny_checkpoint, tile=16, overlap=8)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_predictor(tmp_path / "nope.pt")
