"""RGB-D readers: folder pairing, DFD-indoor and NYUv2 .mat layouts, resampling, hole filling."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from focalstack.data.imageio import write_image
from focalstack.data.rgbd import (
    DFD_CAMERA,
    NYU_CAMERA,
    PAPER_FOCUS_M,
    count_rgbd,
    crop_to_multiple,
    downsample_depth,
    downsample_rgb,
    fill_depth_holes,
    iter_rgbd,
    read_depth_file,
)
from focalstack.utils.color import linear_to_srgb, srgb_to_linear


def _write_depth_png(path: Path, depth_units: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), depth_units.astype(np.uint16))


def _rgb(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------- folder


def test_folder_flat_pairs_png_and_npy(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", _rgb(6, 8))
    _write_depth_png(tmp_path / "a_depth.png", np.full((6, 8), 1500))
    write_image(tmp_path / "b.png", _rgb(6, 8, 1))
    np.save(tmp_path / "b.npy", np.full((6, 8), 2.5, np.float32))
    write_image(tmp_path / "lonely.png", _rgb(6, 8, 2))  # no depth: not a sample
    assert count_rgbd("folder", tmp_path) == 2
    samples = list(iter_rgbd("folder", tmp_path, depth_scale=1e-3))
    assert [s.name for s in samples] == ["a", "b"]
    assert samples[0].rgb.shape == (3, 6, 8) and samples[0].depth_m.shape == (6, 8)
    assert torch.allclose(samples[0].depth_m, torch.full((6, 8), 1.5))
    assert torch.allclose(samples[1].depth_m, torch.full((6, 8), 2.5))
    assert samples[0].camera is None and samples[0].focus_m is None


def test_folder_subfolders_and_split_prefixes(tmp_path: Path) -> None:
    for root in (tmp_path / "plain", tmp_path / "split"):
        root.mkdir()
    write_image(tmp_path / "plain/rgb/x.png", _rgb(4, 4))
    _write_depth_png(tmp_path / "plain/depth/x.png", np.full((4, 4), 10000))
    for split in ("train", "test"):
        write_image(tmp_path / f"split/{split}_rgb/0001.png", _rgb(4, 4))
        _write_depth_png(tmp_path / f"split/{split}_depth/0001.png", np.full((4, 4), 20000))
    (plain,) = iter_rgbd("folder", tmp_path / "plain", depth_scale=1e-4)
    assert plain.name == "x" and torch.allclose(plain.depth_m, torch.ones(4, 4))
    names = [s.name for s in iter_rgbd("folder", tmp_path / "split", depth_scale=1e-4)]
    assert names == ["test_0001", "train_0001"]


def test_folder_overrides_and_depth_cap(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", _rgb(4, 4))
    depth = np.array([[1.0, 2.0, 5.0, 0.0]] * 4, np.float32)
    np.save(tmp_path / "a_depth.npy", depth)
    (s,) = iter_rgbd("folder", tmp_path, max_valid_depth_m=3.0, camera=NYU_CAMERA, focus_m=[1, 2])
    assert s.depth_m[0].tolist() == [1.0, 2.0, 0.0, 0.0]
    assert s.camera == NYU_CAMERA and s.focus_m == [1.0, 2.0]


def test_folder_bad_input(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", _rgb(4, 4))
    _write_depth_png(tmp_path / "a_depth.png", np.ones((4, 4)))
    with pytest.raises(ValueError, match="depth_scale"):
        list(iter_rgbd("folder", tmp_path))
    with pytest.raises(ValueError, match="no paper protocol"):  # options are checked on the call
        iter_rgbd("folder", tmp_path, protocol=True, depth_scale=1e-3)
    with pytest.raises(ValueError, match="max_valid_depth_m"):
        iter_rgbd("folder", tmp_path, depth_scale=1e-3, max_valid_depth_m=0.0)
    with pytest.raises(ValueError, match="out of range"):
        list(iter_rgbd("folder", tmp_path, depth_scale=1e-3, indices=[1]))
    with pytest.raises(ValueError, match="unknown RGB-D kind"):
        list(iter_rgbd("kinect", tmp_path))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a directory"):
        count_rgbd("folder", tmp_path / "missing")
    np.save(tmp_path / "b.npy", np.ones((5, 4), np.float32))
    write_image(tmp_path / "b.png", _rgb(4, 4))
    with pytest.raises(ValueError, match="RGB is"):
        list(iter_rgbd("folder", tmp_path, depth_scale=1e-3, indices=[1]))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no RGB"):
        list(iter_rgbd("folder", empty))


def test_read_depth_file_units_and_invalid(tmp_path: Path) -> None:
    np.save(tmp_path / "d.npy", np.array([[1.0, np.nan], [-2.0, 3.0]], np.float32))
    assert read_depth_file(tmp_path / "d.npy").tolist() == [[1.0, 0.0], [0.0, 3.0]]
    assert cv2.imwrite(str(tmp_path / "d.tif"), np.array([[100, 0]], np.uint16))
    assert read_depth_file(tmp_path / "d.tif", 0.01).tolist() == [[1.0, 0.0]]
    np.save(tmp_path / "rgb.npy", np.ones((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="single-channel"):
        read_depth_file(tmp_path / "rgb.npy")
    with pytest.raises(ValueError, match="cannot read"):
        read_depth_file(tmp_path / "missing.png", 1e-3)


# ---------------------------------------------------------------------------------------------- nyu-mat


def _write_nyu(path: Path, images_hw: np.ndarray, depths_hw: np.ndarray) -> None:
    """Write (N, 3, H, W) images / (N, H, W) depths the way MATLAB v7.3 stores them (h5py sees W, H)."""
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images_hw.transpose(0, 1, 3, 2))
        f.create_dataset("depths", data=depths_hw.transpose(0, 2, 1))


def test_nyu_mat_transpose_and_protocol(tmp_path: Path) -> None:
    n, h, w = 2, 4, 6  # asymmetric: a missing transpose changes the shape and the values
    images = (np.arange(n * 3 * h * w).reshape(n, 3, h, w) % 251).astype(np.uint8)
    depths = (1.0 + np.arange(n * h * w).reshape(n, h, w) / 10.0).astype(np.float32)
    depths[1, 0, 0], depths[1, 0, 1] = 0.05, 20.0  # clipped to [0.1, 10] by the protocol
    path = tmp_path / "nyu.mat"
    _write_nyu(path, images, depths)
    assert count_rgbd("nyu-mat", path) == 2

    raw = list(iter_rgbd("nyu-mat", path, protocol=False))
    assert [s.name for s in raw] == ["nyu_0000", "nyu_0001"]
    assert torch.equal(raw[0].rgb, torch.from_numpy(images[0] / np.float32(255.0)).float())
    assert torch.equal(raw[1].depth_m, torch.from_numpy(depths[1]))
    assert raw[0].camera == NYU_CAMERA.scaled(2.0) and raw[0].focus_m == list(PAPER_FOCUS_M)

    (proto,) = iter_rgbd("nyu-mat", path, indices=[1])
    assert proto.camera == NYU_CAMERA and proto.rgb.shape == (3, 2, 3) and proto.depth_m.shape == (2, 3)
    clipped = torch.from_numpy(np.clip(depths[1], 0.1, 10.0))
    assert torch.allclose(proto.depth_m, downsample_depth(clipped, 2))


def test_nyu_mat_bad_files(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "nodepth.mat", "w") as f:
        f.create_dataset("images", data=np.zeros((1, 3, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="'depths'"):
        count_rgbd("nyu-mat", tmp_path / "nodepth.mat")
    (tmp_path / "v5.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    with pytest.raises(ValueError, match="HDF5"):
        list(iter_rgbd("nyu-mat", tmp_path / "v5.mat"))
    with h5py.File(tmp_path / "shape.mat", "w") as f:
        f.create_dataset("images", data=np.zeros((1, 3, 4, 4), np.uint8))
        f.create_dataset("depths", data=np.zeros((1, 5, 4), np.float32))
    with pytest.raises(ValueError, match="expected images"):
        count_rgbd("nyu-mat", tmp_path / "shape.mat")
    with pytest.raises(ValueError, match="depth_scale"):
        list(iter_rgbd("nyu-mat", tmp_path / "shape.mat", depth_scale=1.0))


# ---------------------------------------------------------------------------------------------- dfd-indoor


def _write_dfd(root: Path, n: int = 2, h: int = 45, w: int = 70) -> None:
    root.mkdir()
    info = {
        "capture_camera": {"focus_distance_m": 1.7},
        "paper_protocol": {
            "camera": DFD_CAMERA.to_dict(),
            "focus_distances_m": list(PAPER_FOCUS_M),
        },
        "source": "test",
    }
    (root / "dataset.json").write_text(json.dumps(info))
    for i in range(n):
        scene = root / f"{i:03d}"
        write_image(scene / "rgb_f8.jpg", _rgb(h, w, i))
        write_image(scene / "rgb_f2.8.jpg", _rgb(h, w, i))
        depth = np.full((h, w), 2000, np.uint16)
        depth[:, : w // 2] = 4000
        depth[0:4, 0:4] = 0  # a sensor hole
        _write_depth_png(scene / "depth_mm.png", depth)


def test_dfd_indoor_protocol_and_holes(tmp_path: Path) -> None:
    _write_dfd(tmp_path / "dfd")
    samples = list(iter_rgbd("dfd-indoor", tmp_path / "dfd"))
    assert [s.name for s in samples] == ["dfd_indoor_000", "dfd_indoor_001"]
    s = samples[0]
    assert s.rgb.shape == (3, 16, 32) and s.depth_m.shape == (16, 32)  # 45x70 -> 22x35 -> 16x32
    assert s.camera == DFD_CAMERA and s.focus_m == list(PAPER_FOCUS_M)
    assert s.depth_m[0:2, 0:2].eq(0).all()  # holes stay invalid
    assert s.meta["real_photo"].endswith("rgb_f2.8.jpg") and s.meta["real_photo_focus_m"] == 1.7
    capped = next(iter_rgbd("dfd-indoor", tmp_path / "dfd", max_valid_depth_m=3.5))
    assert capped.depth_m[8, 4] == 0 and capped.depth_m[8, 30] == pytest.approx(2.0)
    full = next(iter_rgbd("dfd-indoor", tmp_path / "dfd", protocol=False))
    assert full.rgb.shape == (3, 45, 70) and full.camera == DFD_CAMERA.scaled(2.0)
    with pytest.raises(ValueError, match="no DFD-indoor scene"):
        count_rgbd("dfd-indoor", tmp_path)


def test_dfd_indoor_shared_data(shared_data: Path) -> None:
    root = shared_data / "rgbd" / "dfd_indoor_train"
    assert count_rgbd("dfd-indoor", root) == 81
    (s,) = iter_rgbd("dfd-indoor", root, indices=[0])
    assert s.rgb.shape == (3, 208, 320) and s.depth_m.shape == (208, 320)
    assert 0.3 < float(s.depth_m[s.depth_m > 0].median()) < 10.0


# ---------------------------------------------------------------------------------------------- resampling


def test_downsample_depth_matches_masked_mean_loop() -> None:
    g = torch.Generator().manual_seed(1)
    depth = torch.rand(6, 9, generator=g) * 4 + 0.5
    depth[torch.rand(6, 9, generator=g) < 0.4] = 0
    depth[0:2, 0:2] = 0  # a block with no valid pixel
    out = downsample_depth(depth, 2)
    assert out.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            block = depth[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            valid = block[block > 0]
            expected = float(valid.mean()) if valid.numel() else 0.0
            assert float(out[i, j]) == pytest.approx(expected, rel=1e-6)


def test_downsample_rgb_linear_light_average() -> None:
    img = torch.zeros(3, 2, 2)
    img[:, 0, 0] = 1.0
    out = downsample_rgb(img, 2)
    assert torch.allclose(out, linear_to_srgb(torch.full((3, 1, 1), 0.25)))
    flat = torch.full((2, 3, 4, 4), 0.3)
    assert torch.allclose(downsample_rgb(flat, 2), flat[..., :2, :2], atol=1e-6)
    assert torch.allclose(srgb_to_linear(downsample_rgb(img, 1)), srgb_to_linear(img))
    with pytest.raises(ValueError, match="factor"):
        downsample_rgb(img, 0)


def test_crop_to_multiple() -> None:
    assert crop_to_multiple(torch.zeros(3, 37, 50), 16).shape == (3, 32, 48)
    with pytest.raises(ValueError, match="smaller"):
        crop_to_multiple(torch.zeros(10, 10), 16)


# ---------------------------------------------------------------------------------------------- hole filling


def test_fill_depth_holes_properties() -> None:
    depth = torch.full((20, 30), 2.0, dtype=torch.float64)
    depth[:, 15:] = 4.0
    holes = torch.zeros_like(depth, dtype=torch.bool)
    holes[5:9, 3:8] = True  # inside the 2 m region
    holes[12:16, 14] = True  # a crack between 2 m and 4 m: the farther side fills it
    holes[0, :] = True
    filled = fill_depth_holes(torch.where(holes, torch.zeros_like(depth), depth))
    assert filled.dtype == torch.float64 and (filled > 0).all()
    assert torch.equal(filled[~holes], depth[~holes])  # measured depth untouched
    assert filled[5:9, 3:8].eq(2.0).all()
    assert filled[12:16, 14].eq(4.0).all()
    assert filled[0, :14].eq(2.0).all() and filled[0, 14:].eq(4.0).all()  # (0, 14) touches 4 m
    complete = torch.rand(4, 4) + 1
    assert torch.equal(fill_depth_holes(complete), complete)
    single = torch.zeros(5, 7)
    single[4, 6] = 3.0
    assert fill_depth_holes(single).eq(3.0).all()
    nan = torch.tensor([[1.0, float("nan")], [float("inf"), 2.0]])
    assert fill_depth_holes(nan).tolist() == [[1.0, 2.0], [2.0, 2.0]]


def test_fill_depth_holes_bad_input() -> None:
    with pytest.raises(ValueError, match="no valid"):
        fill_depth_holes(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        fill_depth_holes(torch.ones(1, 4, 4))
