"""Mobile Depth: aligned frames + calibrated.txt / focus_dpth.txt, in a scene folder or the original tree."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from focalstack.data.converters.mobiledepth import (
    INCH_M,
    PAPER_CAMERA,
    convert_mobiledepth_scene,
    find_scenes,
    iter_mobiledepth,
    list_frames,
    read_calibration,
)
from focalstack.data.imageio import write_image


def _write_frames(scene: Path, n: int, digits: int = 1) -> list[torch.Tensor]:
    images = [torch.full((3, 4, 6), (k + 1) / (n + 1)) for k in range(n)]
    for k, img in enumerate(images):
        write_image(scene / f"a{k:0{digits}d}.png", img)
    return images


def _write_calibrated(path: Path, depths: list[float], aperture: float = 2.0, focal: float = 30.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{d} {aperture}\n" for d in depths) + f"{focal}\n")


def test_calibrated_scene_is_ordered_far_to_near(tmp_path: Path) -> None:
    scene = tmp_path / "keyboard"
    images = _write_frames(scene, 12)  # a0 .. a11: numeric, not lexical, order
    depths = [40.0, 60.0, 50.0, 30.0, 70.0, 80.0, 90.0, 100.0, 110.0, 120.0, 130.0, 140.0]
    _write_calibrated(scene / "calibrated.txt", depths)
    stack = convert_mobiledepth_scene(scene)
    assert stack.name == "mobiledepth_keyboard" and stack.images.shape == (12, 3, 4, 6)
    expected = sorted(depths, reverse=True)
    assert stack.focus_m.tolist() == pytest.approx([d * INCH_M for d in expected])
    assert torch.allclose(stack.images[-1], images[3], atol=1 / 255)  # 30 in, the nearest, is last
    assert stack.meta["frames"][-1] == "a3.png"
    assert stack.meta["calibration_values"] == {"aperture": 2.0, "focal_length": 30.0}
    assert stack.camera == PAPER_CAMERA and stack.depth_m is None
    sub = convert_mobiledepth_scene(scene, num_slices=4, focus_unit_m=0.01, paper_camera=False)
    assert sub.camera is None and sub.focus_m.tolist() == pytest.approx([1.4, 1.0, 0.7, 0.3])


def test_focus_dpth_negative_and_duplicates(tmp_path: Path) -> None:
    scene = tmp_path / "metals"
    _write_frames(scene, 4, digits=2)
    (scene / "focus_dpth.txt").write_text("-100\n-80\n-80\n-60\n")
    stack = convert_mobiledepth_scene(scene)
    assert stack.focus_m.tolist() == pytest.approx([100 * INCH_M, 80 * INCH_M, 60 * INCH_M])
    assert stack.meta["dropped_duplicate_frames"] == ["a02.png"]


def test_original_download_tree(tmp_path: Path) -> None:
    root = tmp_path / "MobileDepth"
    scene = root / "aligned-focus-stack" / "Aligned" / "group1" / "metals"
    _write_frames(scene, 3)
    _write_calibrated(
        root / "photos-calibration-results" / "calibration" / "metal" / "calibrated.txt", [90, 80, 70]
    )
    other = root / "aligned-focus-stack" / "Aligned" / "group1" / "window"
    _write_frames(other, 2)  # no calibration anywhere: order only
    assert find_scenes(root) == [scene, other]
    metals, window = iter_mobiledepth(root)
    assert metals.focus_m.tolist() == pytest.approx([90 * INCH_M, 80 * INCH_M, 70 * INCH_M])
    assert window.focus_m is None and window.meta["frames"] == ["a0.png", "a1.png"]


def test_read_calibration_formats(tmp_path: Path) -> None:
    _write_calibrated(tmp_path / "c.txt", [1.0, 2.0], aperture=3.0, focal=4.0)
    assert read_calibration(tmp_path / "c.txt") == ([1.0, 2.0], {"aperture": 3.0, "focal_length": 4.0})
    (tmp_path / "f.txt").write_text("5\n6\n")
    assert read_calibration(tmp_path / "f.txt") == ([5.0, 6.0], {})
    (tmp_path / "bad.txt").write_text("1 2\n3 x\n")
    with pytest.raises(ValueError, match="cannot read"):
        read_calibration(tmp_path / "bad.txt")
    (tmp_path / "nofocal.txt").write_text("1 2\n3 4\n")
    with pytest.raises(ValueError, match="focal-length"):
        read_calibration(tmp_path / "nofocal.txt")


def test_bad_scenes(tmp_path: Path) -> None:
    scene = tmp_path / "s"
    _write_frames(scene, 3)
    _write_calibrated(scene / "calibrated.txt", [1.0, 2.0])
    with pytest.raises(ValueError, match="2 focal depths for 3 frames"):
        convert_mobiledepth_scene(scene)
    _write_calibrated(scene / "calibrated.txt", [1.0, -2.0, 3.0])
    with pytest.raises(ValueError, match="positive"):
        convert_mobiledepth_scene(scene)
    _write_calibrated(scene / "calibrated.txt", [100.0, 200.0, 300.0])
    with pytest.raises(ValueError, match="num_slices"):
        convert_mobiledepth_scene(scene, num_slices=4)
    with pytest.raises(ValueError, match="focus_unit_m"):
        convert_mobiledepth_scene(scene, focus_unit_m=0)
    with pytest.raises(ValueError, match="focal length"):  # 1 inch is inside the assumed 50 mm lens
        convert_mobiledepth_scene(scene, focus_unit_m=1e-4)
    lone = tmp_path / "lone"
    _write_frames(lone, 1)
    assert list_frames(lone) == [lone / "a0.png"]
    with pytest.raises(ValueError, match="at least 2"):
        convert_mobiledepth_scene(lone)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no Mobile Depth scene"):
        find_scenes(tmp_path / "empty")
