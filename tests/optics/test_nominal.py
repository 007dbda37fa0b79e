"""The nominal camera completion shared by ``fit`` and training with estimated blur scales."""

from __future__ import annotations

import pytest
import torch

from focalstack.optics import ThinLens
from focalstack.optics.nominal import NOMINAL_F_NUMBER, NOMINAL_FOCAL_LENGTH_M, complete_camera

FOCUS = [0.5, 0.8, 1.5, 4.0]


def test_missing_pitch_gives_the_nominal_blur_span() -> None:
    cam = complete_camera({"focal_length_m": 0.02, "f_number": 2.8}, FOCUS, nominal_span_sigma_px=3.0)
    assert (cam.focal_length_m, cam.f_number) == (0.02, 2.8)
    # A point at the nearest focus distance has a 3 px blur std in the farthest-focused slice.
    assert cam.sigma_px(min(FOCUS), max(FOCUS)) == pytest.approx(3.0)
    # The true blur is the nominal blur times one factor, whatever the depth and focus.
    true = ThinLens(0.02, 2.8, 4e-6)
    d = torch.tensor([[0.3], [0.9], [7.0]], dtype=torch.float64)
    f = torch.tensor([FOCUS], dtype=torch.float64)
    ratio = true.sigma_px(d, f) / cam.sigma_px(d, f)
    torch.testing.assert_close(ratio, torch.full_like(ratio, float(ratio[0, 0])))


def test_unknown_lens_is_nominal_and_shorter_than_the_nearest_focus() -> None:
    cam = complete_camera(None, torch.tensor(FOCUS))
    assert (cam.focal_length_m, cam.f_number) == (NOMINAL_FOCAL_LENGTH_M, NOMINAL_F_NUMBER)
    assert complete_camera({}, [0.008, 0.01]).focal_length_m == pytest.approx(0.004)


def test_complete_camera_is_kept_and_bad_inputs_raise() -> None:
    known = {"focal_length_m": 0.02, "f_number": 2.0, "pixel_size_m": 1e-5}
    assert complete_camera(known, FOCUS) == ThinLens(0.02, 2.0, 1e-5)
    with pytest.raises(ValueError, match="two distinct"):
        complete_camera({}, [1.0, 1.0])
    with pytest.raises(ValueError, match="below every focus distance"):
        complete_camera({"focal_length_m": 0.6}, FOCUS)
    with pytest.raises(ValueError, match="nominal_span_sigma_px"):
        complete_camera({}, FOCUS, nominal_span_sigma_px=0.0)
