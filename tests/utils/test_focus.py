"""Focus measure, its noise floor and the focus peak (utils/focus.py)."""

from __future__ import annotations

import pytest
import torch

from focalstack.utils.focus import focus_floor, focus_measure, focus_peak


def _stack(seed: int = 0) -> torch.Tensor:
    """(3, 3, 32, 32): a textured image sharp in slice 1, box-blurred in slices 0 and 2."""
    sharp = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    blurred = torch.nn.functional.avg_pool2d(sharp, 5, stride=1, padding=2, count_include_pad=False)
    return torch.cat([blurred, sharp, blurred])


def test_focus_measure_shape_and_sharpest_slice() -> None:
    fm = focus_measure(_stack())
    assert fm.shape == (3, 32, 32) and (fm >= 0).all()
    assert (fm.argmax(0) == 1).float().mean() > 0.9
    with pytest.raises(ValueError, match="odd"):
        focus_measure(_stack(), window=4)


def test_floor_scales_with_contrast_and_batches() -> None:
    stack = _stack()
    fm = focus_measure(stack)
    floor = focus_floor(fm)
    assert floor.shape == (1, 1, 1) and floor.item() > 0
    # 10x lower contrast: the focus measure and the floor both scale by 100, so log(fm + floor)
    # differences (the attention model's cue) are unchanged.
    low = focus_measure(0.5 + 0.1 * (stack - 0.5))
    torch.testing.assert_close(focus_floor(low), floor / 100, rtol=1e-3, atol=0)
    cue = (fm + floor).log() - (low + focus_floor(low)).log()
    torch.testing.assert_close(cue, torch.full_like(cue, cue.mean().item()), rtol=0, atol=1e-3)
    batch = torch.stack([fm, low])
    assert focus_floor(batch).shape == (2, 1, 1, 1)
    # a flat stack measures 0 everywhere: the floor stays positive so its log is finite
    assert focus_floor(torch.zeros(3, 8, 8)).item() > 0


def test_focus_peak_interpolates_between_slices() -> None:
    x = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    # log fm is a parabola peaking at 1.25
    logfm = -((x - 1.25) ** 2)
    fm = logfm.exp().view(3, 1, 1).expand(3, 2, 2)
    torch.testing.assert_close(focus_peak(fm, x), torch.full((2, 2), 1.25, dtype=torch.float64))
