"""Untruncated large-blur rendering by blur levels (``render_stack(mode="levels")``)."""

from __future__ import annotations

import pytest
import torch

from focalstack.optics import render_stack
from focalstack.optics._levels import blur_separable, level_sigmas


def _image(b: int = 1, c: int = 3, h: int = 32, w: int = 28, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _exact(aif: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The ring gather with a window holding 8 sigma: the same Gaussian up to tails below 1e-13."""
    half = int(8 * float(sigma.max())) + 1
    return render_stack(aif, sigma, kernel_size=2 * half + 1)


def test_exact_at_the_levels_and_identity_at_zero() -> None:
    aif = _image()
    level = level_sigmas(3.0)[7]
    sigma = torch.full((1, 2, 32, 28), level, dtype=torch.float64)
    torch.testing.assert_close(
        render_stack(aif, sigma, mode="levels"), _exact(aif, sigma), atol=1e-10, rtol=0
    )
    zero = torch.zeros(1, 2, 32, 28, dtype=torch.float64)
    torch.testing.assert_close(render_stack(aif, zero, mode="levels"), aif[:, None].expand(-1, 2, -1, -1, -1))


@pytest.mark.parametrize("max_sigma", [0.4, 1.3, 3.0])
def test_close_to_the_exact_gather_for_any_blur_map(max_sigma: float) -> None:
    for seed in range(2):
        aif = _image(seed=seed)
        sigma = max_sigma * torch.rand(
            1, 3, 32, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(9)
        )
        err = (render_stack(aif, sigma, mode="levels") - _exact(aif, sigma)).abs().max()
        assert err < 5e-3  # white-noise images are the worst case; measured ~3e-3


def test_invariants_and_no_saturation() -> None:
    const = torch.full((1, 3, 20, 24), 0.3)
    sigma = 9.0 * torch.rand(1, 2, 20, 24)
    torch.testing.assert_close(render_stack(const, sigma, mode="levels"), torch.full((1, 2, 3, 20, 24), 0.3))
    # Blur far beyond a 7 x 7 window keeps changing the image (and has a gradient), unlike K = 7.
    aif = _image(h=40, w=40).float()
    s = torch.full((1, 1, 40, 40), 6.0, requires_grad=True)
    out = render_stack(aif, s, mode="levels")
    out.sum().backward()
    assert s.grad.abs().sum() > 0
    wider = render_stack(aif, torch.full_like(s, 8.0), mode="levels")
    assert (wider - out).abs().max() > 1e-3
    assert out.std() < aif.std() / 4


def test_separable_blur_normalises_at_borders() -> None:
    torch.testing.assert_close(blur_separable(torch.ones(2, 1, 9, 7), 5.0), torch.ones(2, 1, 9, 7))


def test_gradcheck_float64() -> None:
    aif = _image(h=9, w=8).requires_grad_()
    sigma = (0.3 + 2.0 * torch.rand(1, 2, 9, 8, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, s: render_stack(a, s, mode="levels"), (aif, sigma), atol=1e-6)


def test_disc_psf_is_refused() -> None:
    with pytest.raises(ValueError, match="Gaussian PSF only"):
        render_stack(torch.rand(1, 3, 8, 8), torch.rand(1, 2, 8, 8), mode="levels", psf="disc")
