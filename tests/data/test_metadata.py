from __future__ import annotations

import math
from pathlib import Path

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from focalstack.data.metadata import (
    EXIF_IFD,
    FULL_FRAME_DIAGONAL_M,
    focus_from_filename,
    infer_camera,
    infer_focus_distances,
)


def _jpeg(path: Path, size: tuple[int, int] = (16, 12), **tags: float) -> Path:
    """Write a tiny JPEG with the given Exif sub-IFD tags (keyword = hex tag id without 0x)."""
    exif = Image.Exif()
    if tags:
        ifd = exif.get_ifd(EXIF_IFD)
        for key, value in tags.items():
            ifd[int(key[1:], 16)] = value
    Image.new("RGB", size, (120, 80, 40)).save(path, exif=exif)
    return path


@pytest.mark.parametrize(
    "name,expected",
    [
        ("img_1.5m.jpg", 1.5),
        ("focus_1500mm.png", 1.5),
        ("shot-35cm.jpg", 0.35),
        ("IMG_1p25M.JPG", 1.25),
        ("d0.8.jpg", 0.8),
        ("focus_2.png", 2.0),
        ("scene_dist-1.25.jpg", 1.25),
        ("stack_00.png", None),
        ("IMG_1234.jpg", None),
        ("exp_10ms.jpg", None),
        ("a_1m_2m.jpg", None),  # ambiguous
    ],
)
def test_focus_from_filename(name: str, expected: float | None) -> None:
    got = focus_from_filename(name)
    assert got == (None if expected is None else pytest.approx(expected))


def test_focus_from_exif(tmp_path: Path) -> None:
    paths = [
        _jpeg(tmp_path / f"img_{i}.jpg", x9206=IFDRational(d * 100, 100))
        for i, d in enumerate([0.5, 1.0, 2.0])
    ]
    dist, source = infer_focus_distances(paths)
    assert source == "exif" and dist == pytest.approx([0.5, 1.0, 2.0])


def test_exif_unknown_falls_back_to_filename(tmp_path: Path) -> None:
    # SubjectDistance 0 means "unknown": the names must be used instead.
    paths = [_jpeg(tmp_path / f"img_{d}m.jpg", x9206=IFDRational(0, 1)) for d in (0.5, 1.0, 2.0)]
    dist, source = infer_focus_distances(paths)
    assert source == "filename" and dist == pytest.approx([0.5, 1.0, 2.0])


def test_identical_exif_values_rejected(tmp_path: Path) -> None:
    paths = [_jpeg(tmp_path / f"d{d}.jpg", x9206=3.0) for d in (0.5, 1.0)]
    assert infer_focus_distances(paths) == ([0.5, 1.0], "filename")


def test_sidecar_ordered_and_table(tmp_path: Path) -> None:
    paths = [_jpeg(tmp_path / f"stack_{i:02d}.jpg") for i in range(3)]
    (tmp_path / "focus.txt").write_text("# focus distances\n0.5\n100cm\n\n2000mm\n")
    dist, source = infer_focus_distances(paths)
    assert dist == pytest.approx([0.5, 1.0, 2.0]) and source.startswith("sidecar:")
    (tmp_path / "focus.txt").write_text("stack_02.jpg 3\nstack_00.jpg 1\nstack_01.jpg 2m\n")
    assert infer_focus_distances(paths)[0] == pytest.approx([1.0, 2.0, 3.0])


def test_no_source(tmp_path: Path) -> None:
    paths = [_jpeg(tmp_path / f"stack_{i:02d}.jpg") for i in range(2)]
    assert infer_focus_distances(paths) == (None, "none")


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no image paths"):
        infer_focus_distances([])
    paths = [_jpeg(tmp_path / f"stack_{i:02d}.jpg") for i in range(3)]
    (tmp_path / "focus.txt").write_text("0.5\n1.0\n")
    with pytest.raises(ValueError, match="2 distances for 3 files"):
        infer_focus_distances(paths)
    (tmp_path / "focus.txt").write_text("0.5\nabc\n1\n")
    with pytest.raises(ValueError, match="abc"):
        infer_focus_distances(paths)


def test_camera_from_focal_plane_resolution(tmp_path: Path) -> None:
    # 4000 px/cm -> 2.5 um at the camera's 32 px width; the file is 16 px wide -> 5 um.
    p = _jpeg(tmp_path / "a.jpg", xA20E=4000.0, xA210=3, x920A=4.5, x829D=1.8, xA002=32)
    cam, source = infer_camera([p])
    assert cam["focal_length_m"] == pytest.approx(4.5e-3)
    assert cam["f_number"] == pytest.approx(1.8)
    assert cam["pixel_size_m"] == pytest.approx(5e-6)
    assert "FocalPlaneXResolution" in source


def test_camera_pitch_from_35mm_equivalent(tmp_path: Path) -> None:
    p = _jpeg(tmp_path / "a.jpg", size=(400, 300), x920A=5.0, xA405=25)
    cam, source = infer_camera([_jpeg(tmp_path / "b.jpg"), p])  # first file has nothing
    expected = FULL_FRAME_DIAGONAL_M / 5.0 / math.hypot(400, 300)
    assert cam["pixel_size_m"] == pytest.approx(expected)
    assert "f_number" not in cam and "FocalLengthIn35mmFilm" in source
    assert infer_camera([_jpeg(tmp_path / "c.jpg")]) == ({}, "none")
