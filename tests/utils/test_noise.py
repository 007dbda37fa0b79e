"""Noise estimation: recovers known white noise, ignores smooth shading, rejects bad input."""

from __future__ import annotations

import pytest
import torch

from focalstack.utils.noise import noise_std


@pytest.mark.parametrize("std", [0.002, 0.01, 0.05])
def test_recovers_white_noise_on_smooth_images(std: float) -> None:
    g = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
    smooth = (0.3 + 0.4 * x * y + 0.1 * x**2).expand(4, 3, 96, 128)  # quadratic shading: no response
    noisy = smooth + std * torch.randn(4, 3, 96, 128, generator=g)
    assert abs(float(noise_std(noisy)) / std - 1) < 0.1
    assert float(noise_std(smooth)) < 1e-5


def test_keeps_the_least_textured_slice() -> None:
    """One sharp, textured slice among blurred ones does not raise the estimate."""
    g = torch.Generator().manual_seed(1)
    stack = 0.5 + 0.01 * torch.randn(3, 3, 64, 64, generator=g)
    stack[0] += 0.3 * torch.rand(3, 64, 64, generator=g)
    assert abs(float(noise_std(stack)) / 0.01 - 1) < 0.15


@pytest.mark.parametrize("bad", [torch.rand(3, 8, 8), torch.rand(2, 3, 2, 8)])
def test_rejects_bad_shapes(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="images"):
        noise_std(bad)


def test_rejects_nan() -> None:
    x = torch.rand(2, 3, 8, 8)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        noise_std(x)
