"""FocalStack validation, scene-folder I/O and derived stacks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from focalstack.data.imageio import write_image
from focalstack.data.stack import FocalStack, read_focus_file
from focalstack.optics.camera import ThinLens

CAM = ThinLens(focal_length_m=0.05, f_number=2.0, pixel_size_m=1e-5)


def _stack(S: int = 3, H: int = 8, W: int = 10, **kw) -> FocalStack:
    args = {
        "images": torch.rand(S, 3, H, W),
        "focus_m": [0.5 * (i + 1) for i in range(S)],
        "camera": CAM,
        "depth_m": torch.rand(H, W) + 0.5,
        "aif": torch.rand(3, H, W),
        "name": "s",
        "meta": {"source": "test"},
    }
    args.update(kw)
    return FocalStack(**args)


def test_valid_stack_properties():
    s = _stack(focus_m=[3.0, 2.0, 1.0])  # decreasing is fine
    assert s.num_slices == 3 and s.size == (8, 10)
    assert s.focus_m.dtype == torch.float64 and s.focus_m.tolist() == [3.0, 2.0, 1.0]
    assert "slices=3" in repr(s) and "8x10" in repr(s)
    assert _stack(focus_m=None, camera=None, depth_m=None, aif=None).focus_m is None
    moved = s.to("cpu")
    assert torch.equal(moved.images, s.images) and moved.focus_m.dtype == torch.float64


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"images": torch.rand(1, 3, 8, 10), "focus_m": [1.0]}, "at least 2 slices"),
        ({"images": torch.rand(3, 4, 8, 10)}, r"\(S, 3, H, W\)"),
        ({"images": torch.rand(3, 8, 10)}, r"\(S, 3, H, W\)"),
        ({"images": torch.zeros(3, 3, 8, 10, dtype=torch.uint8)}, "floating point"),
        ({"images": torch.full((3, 3, 8, 10), float("nan"))}, "NaN"),
        ({"images": torch.full((3, 3, 8, 10), 1.5)}, r"\[0, 1\]"),
        ({"focus_m": [1.0, 2.0]}, "one focus distance per slice"),
        ({"focus_m": [1.0, 1.0, 2.0]}, "duplicate"),
        ({"focus_m": [1.0, 3.0, 2.0]}, "monotonic"),
        ({"focus_m": [0.0, 1.0, 2.0]}, "finite and > 0"),
        ({"focus_m": [1.0, float("inf"), 2.0]}, "finite and > 0"),
        ({"focus_m": [0.04, 1.0, 2.0]}, "focal length"),
        ({"focus_m": ["a", "b", "c"]}, "numbers"),
        ({"depth_m": torch.rand(8, 9)}, "depth_m"),
        ({"depth_m": -torch.rand(8, 10)}, ">= 0"),
        ({"aif": torch.rand(3, 8, 9)}, "aif"),
        ({"aif": torch.full((3, 8, 10), float("nan"))}, "aif"),
        ({"camera": {"focal_length_m": 0.05}}, "ThinLens"),
        ({"meta": []}, "meta"),
    ],
)
def test_validation_errors(changes, match):
    with pytest.raises(ValueError, match=match):
        _stack(**changes)


def test_save_load_roundtrip(tmp_path):
    s = _stack(meta={"source": "test", "nested": {"a": [1, 2]}, "tensor": torch.tensor([1.5, 2.5])})
    s.save(tmp_path / "scene")
    assert sorted(p.name for p in (tmp_path / "scene").iterdir()) == [
        "aif.png",
        "depth.npy",
        "scene.json",
        "stack_00.png",
        "stack_01.png",
        "stack_02.png",
    ]
    back = FocalStack.load(tmp_path / "scene")
    assert back.name == "scene"
    assert (back.images - s.images).abs().max() <= 0.5 / 255 + 1e-6
    assert (back.aif - s.aif).abs().max() <= 0.5 / 255 + 1e-6
    assert torch.equal(back.depth_m, s.depth_m)
    assert torch.equal(back.focus_m, s.focus_m)
    assert back.camera == CAM
    assert back.meta["nested"] == {"a": [1, 2]} and back.meta["tensor"] == [1.5, 2.5]
    assert back.meta["camera"] == CAM.to_dict()
    assert [p.name for p in tmp_path.iterdir()] == ["scene"]  # the temporary folder is gone


def test_save_16bit_and_overwrite(tmp_path):
    s = _stack(S=4)
    s.save(tmp_path / "x", bits=16)
    assert (FocalStack.load(tmp_path / "x").images - s.images).abs().max() <= 1e-4
    with pytest.raises(FileExistsError):
        _stack(S=2, focus_m=[1.0, 2.0]).save(tmp_path / "x")
    _stack(S=2, focus_m=[1.0, 2.0], depth_m=None).save(tmp_path / "x", overwrite=True)
    back = FocalStack.load(tmp_path / "x")
    assert back.num_slices == 2 and back.depth_m is None  # old slices and depth are gone
    assert [p.name for p in tmp_path.iterdir()] == ["x"]
    with pytest.raises(ValueError, match="bits"):
        s.save(tmp_path / "y", bits=12)


def test_save_unknown_focus_and_partial_camera(tmp_path):
    s = _stack(focus_m=None, camera=None, meta={"camera": {"f_number": 1.8}, "focus_order": "file order"})
    s.save(tmp_path / "u")
    scene = json.loads((tmp_path / "u" / "scene.json").read_text())
    assert scene["focus_distances_m"] is None and scene["camera"] == {"f_number": 1.8}
    back = FocalStack.load(tmp_path / "u")
    assert back.focus_m is None and back.camera is None and back.meta["camera"] == {"f_number": 1.8}


def _write_slices(folder, names, H=6, W=7):
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        write_image(folder / name, torch.full((3, H, W), k / 10))


def test_load_sorts_numerically_and_tolerates_missing_json(tmp_path):
    _write_slices(tmp_path / "s", ["stack_10.png", "stack_2.png", "stack_1.jpg", "other.png"])
    s = FocalStack.load(tmp_path / "s")
    # Files were written with values 0.0 (10), 0.1 (2), 0.2 (1): numeric order is 1, 2, 10.
    assert s.images[:, 0, 0, 0].tolist() == pytest.approx([0.2, 0.1, 0.0], abs=0.01)
    assert s.focus_m is None and s.camera is None and s.meta == {}


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        FocalStack.load(tmp_path / "nothing")
    _write_slices(tmp_path / "one", ["stack_00.png"])
    with pytest.raises(ValueError, match="at least 2"):
        FocalStack.load(tmp_path / "one")
    _write_slices(tmp_path / "dup", ["stack_01.png", "stack_1.jpg"])
    with pytest.raises(ValueError, match="two files for slice 1"):
        FocalStack.load(tmp_path / "dup")
    _write_slices(tmp_path / "n", ["stack_00.png", "stack_01.png"])
    (tmp_path / "n" / "scene.json").write_text(json.dumps({"focus_distances_m": [1.0, 2.0, 3.0]}))
    with pytest.raises(ValueError, match=r"scene folder .*n: need one focus distance per slice"):
        FocalStack.load(tmp_path / "n")
    (tmp_path / "n" / "scene.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        FocalStack.load(tmp_path / "n")
    _write_slices(tmp_path / "sz", ["stack_00.png"])
    write_image(tmp_path / "sz" / "stack_01.png", torch.rand(3, 5, 5))
    with pytest.raises(ValueError, match="stack_01.png is 5x5"):
        FocalStack.load(tmp_path / "sz")


def test_load_reads_nonfinite_depth_as_invalid(tmp_path):
    _write_slices(tmp_path / "d", ["stack_00.png", "stack_01.png"], H=2, W=2)
    np.save(tmp_path / "d" / "depth.npy", np.array([[1.0, np.nan], [np.inf, 2.0]], dtype=np.float32))
    assert FocalStack.load(tmp_path / "d").depth_m.tolist() == [[1.0, 0.0], [0.0, 2.0]]


def test_from_files(tmp_path):
    _write_slices(tmp_path, ["a.png", "b.png", "c.png"])
    s = FocalStack.from_files([tmp_path / n for n in ("a.png", "b.png", "c.png")], [1.0, 2.0, 4.0], CAM)
    assert s.num_slices == 3 and s.name == "a" and s.camera == CAM
    assert s.meta["focus_source"] == "given"
    assert FocalStack.from_files([tmp_path / "a.png", tmp_path / "b.png"]).focus_m is None
    write_image(tmp_path / "big.png", torch.rand(3, 9, 9))
    with pytest.raises(ValueError, match="big.png"):
        FocalStack.from_files([tmp_path / "a.png", tmp_path / "big.png"])
    with pytest.raises(ValueError, match="at least 2"):
        FocalStack.from_files([tmp_path / "a.png"])


def test_read_focus_file(tmp_path):
    f = tmp_path / "focus.txt"
    f.write_text("# metres\n0.5\n0.75, 1.0  # two on a line\n\n1.5 2.5\n")
    assert read_focus_file(f).tolist() == [0.5, 0.75, 1.0, 1.5, 2.5]
    assert read_focus_file(f).dtype == torch.float64
    f.write_text("1.0\n2.0 x3\n")
    with pytest.raises(ValueError, match=r"line 2: cannot parse 'x3'"):
        read_focus_file(f)
    f.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no focus distances"):
        read_focus_file(f)
    with pytest.raises(ValueError, match="cannot read focus file"):
        read_focus_file(tmp_path / "missing.txt")


def test_resized_updates_camera_and_resamples():
    depth = torch.arange(8 * 10, dtype=torch.float32).reshape(8, 10) + 1
    s = _stack(depth_m=depth, images=torch.full((3, 3, 8, 10), 0.25))
    r = s.resized(0.5)
    assert r.size == (4, 5) and r.aif.shape == (3, 4, 5) and r.depth_m.shape == (4, 5)
    assert r.camera.pixel_size_m == pytest.approx(2 * CAM.pixel_size_m)
    assert r.meta["camera"]["pixel_size_m"] == pytest.approx(2 * CAM.pixel_size_m)
    assert torch.allclose(r.images, torch.tensor(0.25))  # a flat image stays flat
    assert set(r.depth_m.flatten().tolist()) <= set(depth.flatten().tolist())  # nearest: no mixed depths
    assert "resized 8x10 -> 4x5" in r.meta["history"][-1]
    assert s.camera == CAM and s.size == (8, 10)  # the original is untouched
    up = s.resized(size=(16, 20))
    assert up.size == (16, 20) and up.camera.pixel_size_m == pytest.approx(CAM.pixel_size_m / 2)


def test_resized_partial_camera_and_errors():
    s = _stack(camera=None, meta={"camera": {"pixel_size_m": 2e-6, "f_number": 2}})
    assert s.resized(0.5).meta["camera"] == {"pixel_size_m": 4e-6, "f_number": 2}
    assert s.resized(size=(4, 10)).size == (4, 10)  # anisotropic is fine without a camera
    with pytest.raises(ValueError, match="anisotropic"):
        _stack().resized(size=(4, 10))
    with pytest.raises(ValueError, match="exactly one"):
        _stack().resized()
    with pytest.raises(ValueError, match="exactly one"):
        _stack().resized(0.5, size=(4, 5))
    with pytest.raises(ValueError, match="scale"):
        _stack().resized(-1.0)


def test_cropped():
    s = _stack()
    c = s.cropped((1, 2, 5, 6))
    assert c.size == (5, 6)
    assert torch.equal(c.images, s.images[:, :, 1:6, 2:8])
    assert torch.equal(c.depth_m, s.depth_m[1:6, 2:8]) and torch.equal(c.aif, s.aif[:, 1:6, 2:8])
    assert c.camera == s.camera
    with pytest.raises(ValueError, match="outside"):
        s.cropped((4, 0, 5, 6))
    with pytest.raises(ValueError, match="4 integers"):
        s.cropped((0, 0, 2.5, 3))


def test_loads_every_shared_scene(shared_data):
    folders = [shared_data / "lightfield" / "antinous_stack", *sorted((shared_data / "real").iterdir())]
    folders = [f for f in folders if f.is_dir()]
    assert len(folders) >= 2
    for folder in folders:
        s = FocalStack.load(folder)
        raw = json.loads((folder / "scene.json").read_text())
        assert s.num_slices >= 2 and s.images.shape[1] == 3, folder
        assert s.meta.get("camera") == raw.get("camera"), folder  # the raw dict is kept
        if raw["focus_distances_m"] is None:
            assert s.focus_m is None, folder
        else:
            assert s.focus_m.tolist() == raw["focus_distances_m"], folder
        if s.depth_m is not None:
            assert s.depth_m.shape == s.images.shape[-2:]
    antinous = FocalStack.load(folders[0])
    assert antinous.camera is not None and antinous.depth_m is not None and antinous.aif is not None
