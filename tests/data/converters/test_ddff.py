"""DDFF-12 HDF5 reader on tiny files with the real keys, shapes and dtypes."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from focalstack.data.converters.ddff import (
    DDFF_BASELINE_FOCAL_M_PX,
    count_ddff,
    ddff_camera,
    ddff_focus_distances_m,
    disparity_to_depth_m,
    iter_ddff,
)


def _write_ddff(path: Path, n: int = 2, h: int = 6, w: int = 8, float_stacks: bool = False) -> tuple:
    g = np.random.default_rng(0)
    stacks = g.integers(0, 256, (n, 10, h, w, 3), dtype=np.uint8)
    disp = g.uniform(0.02, 0.28, (n, h, w)).astype(np.float32)
    disp[0, 0, 0] = 0.0  # no measurement
    aif = g.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    with h5py.File(path, "w") as f:
        f.create_dataset("stack_train", data=stacks.astype(np.float32) if float_stacks else stacks)
        f.create_dataset("disp_train", data=disp[:, None] if float_stacks else disp)  # DFV keeps (N, 1, H, W)
        f.create_dataset("AiF_train", data=aif)
        f.create_dataset("stack_test", data=stacks[:1])
    return stacks, disp, aif


def test_focus_distances_follow_the_toolbox_refocus() -> None:
    focus = ddff_focus_distances_m()
    assert len(focus) == 10 and focus[0] == pytest.approx(0.5) and focus[-1] == pytest.approx(7.0)
    dioptre_steps = np.diff(1.0 / np.asarray(focus))
    assert np.allclose(dioptre_steps, dioptre_steps[0])  # refocus disparities are evenly spaced
    # slice i is refocused at disparity bf / focus_i = linspace(bf / 0.5, bf / 7, 10)[i]
    disparities = DDFF_BASELINE_FOCAL_M_PX / np.asarray(focus)
    expected = np.linspace(DDFF_BASELINE_FOCAL_M_PX / 0.5, DDFF_BASELINE_FOCAL_M_PX / 7, 10)
    assert np.allclose(disparities, expected)
    # consistent with the published ground-truth disparity range [0.0202, 0.2825] px over 0.5..7 m
    bf = DDFF_BASELINE_FOCAL_M_PX
    assert bf == pytest.approx(0.0202 * 7, rel=0.01) and bf == pytest.approx(0.2825 * 0.5, rel=0.01)


def test_camera_matches_the_synthetic_aperture_blur() -> None:
    cam = ddff_camera()
    spread = math.sqrt((9**2 - 1) / 12)
    for depth, focus in [(7.0, 0.5), (0.6, 3.0), (2.0, 1.0)]:
        box_std_px = abs(DDFF_BASELINE_FOCAL_M_PX / depth - DDFF_BASELINE_FOCAL_M_PX / focus) * spread
        assert cam.sigma_px(depth, focus) == pytest.approx(box_std_px, rel=0.03)


def test_disparity_to_depth() -> None:
    disp = torch.tensor([[0.0, 0.1], [-0.1, float("nan")]])
    depth = disparity_to_depth_m(disp, 0.14)
    assert torch.allclose(depth, torch.tensor([[0.0, 1.4], [0.0, 0.0]]))


def test_iter_ddff_train_and_test(tmp_path: Path) -> None:
    path = tmp_path / "ddff.h5"
    stacks, disp, aif = _write_ddff(path)
    assert count_ddff(path) == 2 and count_ddff(path, "test") == 1
    items = list(iter_ddff(path))
    assert [s.name for s in items] == ["ddff_train_0000", "ddff_train_0001"]
    s = items[0]
    assert s.images.shape == (10, 3, 6, 8)
    assert torch.equal(s.images[3], torch.from_numpy(stacks[0, 3]).permute(2, 0, 1).float() / 255)
    assert torch.equal(s.aif, torch.from_numpy(aif[0]).permute(2, 0, 1).float() / 255)
    expected = DDFF_BASELINE_FOCAL_M_PX / np.where(disp[0] > 0, disp[0], np.inf).astype(np.float64)
    assert torch.allclose(s.depth_m, torch.from_numpy(expected).float())
    assert s.focus_m.tolist() == pytest.approx(ddff_focus_distances_m())
    assert s.camera == ddff_camera()
    (test,) = iter_ddff(path, split="test")
    assert test.depth_m is None and test.aif is None and test.name == "ddff_test_0000"
    (second,) = iter_ddff(path, indices=[1])
    assert second.name == "ddff_train_0001"


def test_float_stacks_and_channel_axis(tmp_path: Path) -> None:
    path = tmp_path / "dfv.h5"
    stacks, disp, _ = _write_ddff(path, float_stacks=True)
    (s,) = iter_ddff(path, indices=[1])
    assert torch.allclose(s.images[0], torch.from_numpy(stacks[1, 0]).permute(2, 0, 1).float() / 255)
    assert s.depth_m.shape == (6, 8)


def test_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "ddff.h5"
    _write_ddff(path)
    with pytest.raises(ValueError, match="split"):
        count_ddff(path, "training")
    with pytest.raises(ValueError, match="'stack_val'"):
        list(iter_ddff(path, split="val"))
    with pytest.raises(ValueError, match="out of range"):
        list(iter_ddff(path, indices=[2]))
    with pytest.raises(ValueError, match="baseline_focal_m_px"):
        list(iter_ddff(path, baseline_focal_m_px=0.0))
    (tmp_path / "x.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="cannot open"):
        count_ddff(tmp_path / "x.h5")
    with h5py.File(tmp_path / "shape.h5", "w") as f:
        f.create_dataset("stack_train", data=np.zeros((1, 10, 4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"\(N, S, H, W, 3\)"):
        count_ddff(tmp_path / "shape.h5")
