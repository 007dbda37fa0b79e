"""``focalstack convert``: each kind end to end on tiny files, option checks and error messages."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from focalstack.cli import main
from focalstack.data.converters.ddff import ddff_focus_distances_m
from focalstack.data.imageio import write_image
from focalstack.data.rgbd import NYU_CAMERA, PAPER_FOCUS_M
from focalstack.data.stack import FocalStack


def _ddff(path: Path, n: int = 3) -> Path:
    g = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.create_dataset("stack_train", data=g.integers(0, 256, (n, 10, 4, 6, 3), dtype=np.uint8))
        f.create_dataset("disp_train", data=g.uniform(0.02, 0.28, (n, 4, 6)).astype(np.float32))
    return path


def _nyu(path: Path) -> Path:
    g = np.random.default_rng(1)
    depths = g.uniform(0.5, 8.0, (2, 16, 12)).astype(np.float32)  # as h5py sees MATLAB's 12 x 16
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=g.integers(0, 256, (2, 3, 16, 12), dtype=np.uint8))
        f.create_dataset("depths", data=depths)
    return path


def test_convert_ddff_with_selection(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _ddff(tmp_path / "ddff.h5")
    main(["convert", "ddff", str(src), "--out", str(tmp_path / "out"), "--indices", "2", "0", "--limit", "1"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ddff_train_0002"]
    stack = FocalStack.load(tmp_path / "out" / "ddff_train_0002")
    assert stack.num_slices == 10 and stack.depth_m.shape == (4, 6) and stack.camera is not None
    assert stack.focus_m.tolist() == pytest.approx(ddff_focus_distances_m())
    assert "wrote 1 scene folder" in capsys.readouterr().out


def test_convert_nyu_renders_the_paper_protocol(tmp_path: Path) -> None:
    src = _nyu(tmp_path / "nyu.mat")
    main(["convert", "nyu", str(src), "--out", str(tmp_path / "out"), "--model", "gather", "--indices", "1"])
    stack = FocalStack.load(tmp_path / "out" / "nyu_0001")
    assert stack.images.shape == (5, 3, 6, 8)  # 12 x 16 halved
    assert stack.camera == NYU_CAMERA and stack.focus_m.tolist() == list(PAPER_FOCUS_M)
    scene = json.loads((tmp_path / "out" / "nyu_0001" / "scene.json").read_text())
    assert scene["synth"]["model"] == "gather" and scene["rgbd"]["dataset"] == "nyu-mat"
    assert stack.aif is not None and stack.depth_m.min() >= 0.5


def test_convert_dfd_indoor_with_focus_override(tmp_path: Path) -> None:
    root = tmp_path / "dfd"
    scene = root / "000"
    write_image(scene / "rgb_f8.jpg", torch.rand(3, 36, 40))
    assert cv2.imwrite(str(scene / "depth_mm.png"), np.full((36, 40), 2500, np.uint16))
    out = tmp_path / "out"
    main(["convert", "dfd-indoor", str(root), "--out", str(out), "--focus", "1", "2", "--model", "gather"])
    stack = FocalStack.load(out / "dfd_indoor_000")
    assert stack.images.shape == (2, 3, 16, 16) and stack.focus_m.tolist() == [1.0, 2.0]


def test_convert_and_synth_render_the_same_stacks(tmp_path: Path) -> None:
    root = tmp_path / "dfd"
    gen = torch.Generator().manual_seed(0)
    depth = np.full((36, 40), 3000, np.uint16)
    depth[:, :20] = 900
    depth[:3, :3] = 0  # a sensor hole
    for name in ("000", "001"):
        write_image(root / name / "rgb_f8.jpg", torch.rand(3, 36, 40, generator=gen))
        assert cv2.imwrite(str(root / name / "depth_mm.png"), depth)
    options = ["--model", "layered", "--psf", "gaussian", "--seed", "4", "--no-fill-hidden"]
    main(["convert", "dfd-indoor", str(root), "--out", str(tmp_path / "c"), *options, "--noise-read", "0.01"])
    synth = ["synth", "--source", str(root), "--kind", "dfd-indoor", "--out", str(tmp_path / "s")]
    main([*synth, *options, "--noise.read", "0.01"])
    for name in ("dfd_indoor_000", "dfd_indoor_001"):
        files = sorted(p.name for p in (tmp_path / "c" / name).iterdir())
        assert files == sorted(p.name for p in (tmp_path / "s" / name).iterdir())
        for f in files:
            if f != "scene.json":
                assert (tmp_path / "c" / name / f).read_bytes() == (tmp_path / "s" / name / f).read_bytes()
        c = json.loads((tmp_path / "c" / name / "scene.json").read_text())
        s = json.loads((tmp_path / "s" / name / "scene.json").read_text())
        assert c["synth"] == s["synth"] and s["synth"]["noise"]["read"] == 0.01


def test_convert_hci_and_mobiledepth(tmp_path: Path) -> None:
    hci = tmp_path / "hci" / "scene"
    hci.mkdir(parents=True)
    (hci / "parameters.cfg").write_text(
        "[intrinsics]\nfocal_length_mm = 100\nimage_resolution_x_px = 8\nimage_resolution_y_px = 8\n"
        "sensor_size_mm = 35\n[extrinsics]\nnum_cams_x = 3\nnum_cams_y = 3\nbaseline_mm = 100\n"
        "focus_distance_m = 7\n[meta]\ndisp_min = -0.2\ndisp_max = 0.2\n"
    )
    for k in range(9):
        write_image(hci / f"input_Cam{k:03d}.png", torch.rand(3, 8, 8))
    main(
        [
            "convert",
            "hci",
            str(tmp_path / "hci"),
            "--out",
            str(tmp_path / "o1"),
            "--size",
            "4",
            "--num-slices",
            "3",
        ]
    )
    stack = FocalStack.load(tmp_path / "o1" / "scene")
    assert stack.images.shape == (3, 3, 4, 4) and stack.camera is not None and stack.depth_m is None

    md = tmp_path / "md" / "balls"
    for k in range(3):
        write_image(md / f"a{k}.jpg", torch.rand(3, 4, 4))
    (md / "focus_dpth.txt").write_text("50\n40\n30\n")
    main(
        [
            "convert",
            "mobiledepth",
            str(tmp_path / "md"),
            "--out",
            str(tmp_path / "o2"),
            "--focus-unit-m",
            "0.01",
        ]
    )
    assert FocalStack.load(tmp_path / "o2" / "mobiledepth_balls").focus_m.tolist() == pytest.approx(
        [0.5, 0.4, 0.3]
    )


def test_convert_errors_are_clean_messages(tmp_path: Path) -> None:
    src = _ddff(tmp_path / "ddff.h5", n=1)
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="--size does not apply to ddff"):
        main(["convert", "ddff", str(src), "--out", str(out), "--size", "256"])
    with pytest.raises(SystemExit, match="out of range"):
        main(["convert", "ddff", str(src), "--out", str(out), "--indices", "5"])
    main(["convert", "ddff", str(src), "--out", str(out)])
    with pytest.raises(SystemExit, match="exists"):
        main(["convert", "ddff", str(src), "--out", str(out)])
    main(["convert", "ddff", str(src), "--out", str(out), "--overwrite"])
    with pytest.raises(SystemExit, match="not a directory"):
        main(["convert", "defocusnet", str(tmp_path / "nothing"), "--out", str(out)])
