"""``focalstack synth`` end to end on tiny inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from focalstack.cli import main
from focalstack.data.imageio import write_image
from focalstack.data.stack import FocalStack

PROC = ["--proc.size", "24", "32"]


def _files(folder):
    """Every file's bytes, scene.json parsed without the (output-folder dependent) command line."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.name == "scene.json":
            scene = json.loads(p.read_text())
            scene["command"].pop("out")
            files[p.relative_to(folder).as_posix()] = scene
        elif p.is_file():
            files[p.relative_to(folder).as_posix()] = p.read_bytes()
    return files


def test_procedural_run_is_reproducible(tmp_path):
    main(["synth", "--procedural", "2", "--out", str(tmp_path / "a"), *PROC])
    main(["synth", "--procedural", "2", "--out", str(tmp_path / "b"), *PROC])
    main(["synth", "--procedural", "2", "--out", str(tmp_path / "c"), "--seed", "1", *PROC])
    a = _files(tmp_path / "a")
    assert a == _files(tmp_path / "b")
    c = _files(tmp_path / "c")
    assert all(a[k] != c[k] for k in a if "stack_00" in k)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["procedural_000000", "procedural_000001"]
    stack = FocalStack.load(tmp_path / "a" / names[1])
    assert stack.size == (24, 32) and stack.camera is not None and stack.depth_m is not None
    scene = json.loads((tmp_path / "a" / names[1] / "scene.json").read_text())
    assert scene["synth"]["seed"] == 0 and isinstance(scene["synth"]["scene_seed"], int)
    assert scene["synth"]["psf"] in ("gaussian", "disc") and "noise" in scene["synth"]
    assert scene["command"]["proc"]["size"] == [24, 32] and scene["layout"]


def test_procedural_limit_split_and_overwrite(tmp_path):
    split = tmp_path / "split.txt"
    split.write_text("# wanted\nprocedural_000002\nprocedural_000000\n")
    main(["synth", "--procedural", "4", "--out", str(tmp_path / "o"), "--split", str(split), *PROC])
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["procedural_000000", "procedural_000002"]
    with pytest.raises(SystemExit, match="exists"):
        main(["synth", "--procedural", "1", "--out", str(tmp_path / "o"), *PROC])
    main(["synth", "--procedural", "4", "--limit", "1", "--overwrite", "--out", str(tmp_path / "o"), *PROC])


def _rgbd_folder(folder, H=40, W=52):
    folder.mkdir()
    gen = torch.Generator().manual_seed(0)
    for name in ("a", "b"):
        write_image(folder / f"{name}.png", torch.rand(3, H, W, generator=gen))
        depth = np.full((H, W), 2.0, dtype=np.float32)
        depth[:, : W // 2] = 0.8
        depth[:2, :2] = 0.0  # a sensor hole
        np.save(folder / f"{name}_depth.npy", depth)


CAMERA = ["--camera.focal-length-m", "0.025", "--camera.f-number", "2", "--camera.pixel-size-m", "1e-5"]


def test_rgbd_folder_run(tmp_path):
    _rgbd_folder(tmp_path / "rgbd")
    out = tmp_path / "out"
    main(
        [
            "synth",
            "--source",
            str(tmp_path / "rgbd"),
            "--kind",
            "folder",
            "--out",
            str(out),
            *CAMERA,
            "--focus-m",
            "0.7",
            "1.0",
            "2.5",
            "--scale",
            "0.5",
            "--crop-multiple",
            "8",
            "--psf",
            "gaussian",
            "--noise.read",
            "0.01",
            "--noise.quantize-bits",
            "8",
            "--seed",
            "5",
        ]
    )
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"]
    stack = FocalStack.load(out / "a")
    assert stack.size == (16, 24)  # 20 x 26 after scaling, cropped to multiples of 8
    assert stack.num_slices == 3 and stack.focus_m.tolist() == [0.7, 1.0, 2.5]
    assert stack.camera.pixel_size_m == pytest.approx(2e-5)  # the pitch follows the scale
    assert float(stack.depth_m[0, 0]) == 0.0 and float(stack.depth_m.max()) == pytest.approx(2.0)
    scene = json.loads((out / "a" / "scene.json").read_text())
    assert scene["synth"]["model"] == "layered" and scene["synth"]["psf"] == "gaussian"
    assert scene["synth"]["noise"] == {"shot": 0.0, "read": 0.01, "quantize_bits": 8}
    assert scene["synth"]["seed"] == 5 and scene["synth"]["num_layers"] >= 1 and scene["synth"]["fill_hidden"]
    assert scene["resolution"] == {
        "source_size": [40, 52],
        "scale": 0.5,
        "crop_multiple": 8,
        "size": [16, 24],
    }
    assert scene["focus_source"] == "given" and scene["rgbd"]["dataset"] == "folder"
    assert scene["command"]["source"] == str(tmp_path / "rgbd")
    # The slice focused at the far plane keeps that half sharp: it matches the (scaled) AIF there.
    far_half = (stack.images[2] - stack.aif)[:, 2:-2, 15:-2].abs().mean()
    near_half = (stack.images[2] - stack.aif)[:, 2:-2, 2:9].abs().mean()
    assert far_half < 0.02 < near_half


def test_rgbd_per_pixel_model_and_split(tmp_path):
    _rgbd_folder(tmp_path / "rgbd")
    split = tmp_path / "split.txt"
    split.write_text("b\n")
    main(
        [
            "synth",
            "--source",
            str(tmp_path / "rgbd"),
            "--out",
            str(tmp_path / "o"),
            *CAMERA,
            "--focus-m",
            "0.8",
            "2.0",
            "--model",
            "scatter",
            "--kernel-size",
            "7",
            "--split",
            str(split),
        ]
    )
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["b"]
    scene = json.loads((tmp_path / "o" / "b" / "scene.json").read_text())
    assert scene["synth"]["model"] == "scatter" and scene["synth"]["kernel_size"] == 7


def test_cli_errors(tmp_path):
    _rgbd_folder(tmp_path / "rgbd")
    src = ["--source", str(tmp_path / "rgbd")]
    with pytest.raises(SystemExit, match="--camera.focal-length-m"):
        main(["synth", *src, "--out", str(tmp_path / "o1"), "--focus-m", "1", "2"])
    with pytest.raises(SystemExit, match="--focus-m"):
        main(["synth", *src, "--out", str(tmp_path / "o2"), *CAMERA])
    with pytest.raises(SystemExit, match="either --source"):
        main(["synth", *src, "--procedural", "2", "--out", str(tmp_path / "o3")])
    with pytest.raises(SystemExit, match="either --source"):
        main(["synth", "--out", str(tmp_path / "o4")])
    with pytest.raises(SystemExit, match="--proc"):
        main(["synth", "--procedural", "1", "--scale", "0.5", "--out", str(tmp_path / "o5")])
    split = tmp_path / "split.txt"
    split.write_text("zzz\n")
    with pytest.raises(SystemExit, match="zzz"):
        main(
            [
                "synth",
                *src,
                "--out",
                str(tmp_path / "o6"),
                *CAMERA,
                "--focus-m",
                "1",
                "2",
                "--split",
                str(split),
            ]
        )
