from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from focalstack.inference.outputs import colorize_depth, depth_png, rerender, write_prediction
from focalstack.optics import render_from_depth
from tests.helpers import make_stack


def test_write_prediction_files_and_recon(tmp_path):
    stack = make_stack()
    depth = torch.full((40, 52), 1.0)
    aif = torch.rand(3, 40, 52)
    info = write_prediction(tmp_path, stack, depth, aif, extra_meta={"method": "test"})
    for name in ("depth.npy", "depth.png", "depth_color.png", "aif.png", "recon.png", "prediction.json"):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "prediction.json").read_text())
    assert saved["method"] == "test" and saved["depth_units"] == "m" and len(saved["rerender_psnr_db"]) == 4
    assert info["depth_units"] == "m"
    d = np.load(tmp_path / "depth.npy")
    assert d.dtype == np.float32 and d.shape == (40, 52)
    png = cv2.imread(str(tmp_path / "depth.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16
    decoded = saved["depth_png"]["offset"] + png * saved["depth_png"]["scale"]
    np.testing.assert_allclose(decoded, d, atol=2 * saved["depth_png"]["scale"])


def test_recon_skipped_without_camera(tmp_path):
    stack = make_stack(camera=False)
    write_prediction(tmp_path, stack, torch.ones(40, 52), torch.rand(3, 40, 52))
    assert not (tmp_path / "recon.png").exists()


def test_rerender_matches_forward_model():
    stack = make_stack()
    depth, aif = torch.rand(40, 52) + 0.5, torch.rand(3, 40, 52)
    cam = stack.camera
    expected = render_from_depth(
        aif[None],
        depth[None, None],
        stack.focus_m[None].float(),
        cam.focal_length_m,
        cam.f_number,
        cam.pixel_size_m,
        kernel_size=None,
    )[0]
    torch.testing.assert_close(rerender(stack, depth, aif), expected)


def test_depth_png_roundtrip_slice_units():
    depth = np.linspace(-0.5, 4.5, 200, dtype=np.float32).reshape(10, 20)
    values, s = depth_png(depth)
    assert values.min() >= 1  # 0 is reserved for invalid pixels
    np.testing.assert_allclose(s["offset"] + values * s["scale"], depth, atol=s["scale"])


def test_colorize_has_scale_bar_and_handles_invalid():
    depth = np.ones((30, 40), np.float32)
    depth[0, 0] = np.nan
    img = colorize_depth(depth)
    assert img.shape[0] == 30 and img.shape[1] > 40 and img.dtype == np.uint8
    assert (img[0, 0] == 0).all()


def test_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="expected depth"):
        write_prediction(tmp_path, make_stack(), torch.ones(1, 40, 52), torch.rand(3, 40, 52))
    with pytest.raises(ValueError, match="prediction size"):
        write_prediction(tmp_path, make_stack(), torch.ones(20, 52), torch.rand(3, 20, 52))
