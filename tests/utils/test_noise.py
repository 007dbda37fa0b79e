"""Noise estimation: recovers known white noise, ignores smooth shading, rejects bad input."""

from __future__ import annotations

import pytest
import torch

from focalstack.utils.noise import noise_profile, noise_std


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


def test_profile_follows_signal_dependent_noise() -> None:
    """Noise falling with intensity (as sRGB shot plus read noise does) is recovered per intensity bin."""
    g = torch.Generator().manual_seed(2)
    x = torch.linspace(0, 1, 128).expand(3, 3, 96, 128)  # a ramp: no Immerkaer response of its own
    std_of = lambda i: 0.02 * (1 - i) + 0.005  # noqa: E731
    intensity, std = noise_profile(x + std_of(x) * torch.randn(x.shape, generator=g), levels=4)
    assert intensity.shape == std.shape == (4,) and (intensity.diff() > 0).all()
    torch.testing.assert_close(std, std_of(intensity), rtol=0.08, atol=0.0)


def test_profile_of_constant_noise_is_flat_and_matches_noise_std() -> None:
    g = torch.Generator().manual_seed(3)
    noisy = torch.linspace(0.1, 0.9, 128).expand(2, 3, 64, 128) + 0.01 * torch.randn(
        2, 3, 64, 128, generator=g
    )
    _, std = noise_profile(noisy, levels=5)
    assert float(std.max() / std.min()) < 1.15
    _, one = noise_profile(noisy, levels=1)
    assert abs(float(one[0] / noise_std(noisy)) - 1) < 0.05


@pytest.mark.parametrize("bad", [torch.rand(3, 8, 8), torch.rand(2, 3, 2, 8)])
def test_profile_rejects_bad_input(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="images"):
        noise_profile(bad)
    with pytest.raises(ValueError, match="levels"):
        noise_profile(torch.rand(2, 3, 8, 8), levels=0)
    nan_in_last_slice = torch.rand(2, 3, 8, 8)
    nan_in_last_slice[1, 0, 4, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        noise_profile(nan_in_last_slice)
