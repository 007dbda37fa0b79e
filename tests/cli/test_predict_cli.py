from __future__ import annotations

import json

import pytest

from focalstack.cli import main
from focalstack.data.imageio import write_image
from tests.helpers import make_stack


@pytest.fixture
def scenes(tmp_path):
    root = tmp_path / "scenes"
    for name in ("a", "b"):
        stack = make_stack(32, 36, 3)
        stack.name = name
        stack.save(root / name)
    return root


def write_loose_files(folder):
    """Three slices of a random stack as loose PNG files; returns their paths."""
    paths = [folder / f"img{i}.png" for i in range(3)]
    for path, img in zip(paths, make_stack(32, 36, 3).images):
        write_image(path, img)
    return paths


def test_predict_scene_folder(scenes, tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    main(["predict", str(scenes / "a"), "--out", str(out), "--checkpoint", str(tiny_checkpoint)])
    info = json.loads((out / "prediction.json").read_text())
    assert info["depth_units"] == "m" and (out / "recon.png").is_file()


def test_predict_folder_of_scenes_with_dff(scenes, tmp_path):
    out = tmp_path / "out"
    main(["predict", str(scenes), "--out", str(out), "--method", "dff"])
    for name in ("a", "b"):
        assert json.loads((out / name / "prediction.json").read_text())["method"] == "dff"


def test_predict_loose_files_with_focus(tmp_path, tiny_checkpoint):
    paths = write_loose_files(tmp_path)
    out = tmp_path / "out"
    args = ["predict", *map(str, paths), "--focus", "0.5", "1.0", "2.0", "--out", str(out)]
    main([*args, "--checkpoint", str(tiny_checkpoint)])
    info = json.loads((out / "prediction.json").read_text())
    assert info["focus_distances_m"] == [0.5, 1.0, 2.0]
    assert "recon" in info  # camera unknown: no re-rendering, and the output says why


def test_predict_loose_files_without_focus_gives_relative_depth(tmp_path, tiny_checkpoint):
    paths = write_loose_files(tmp_path)
    out = tmp_path / "out"
    main(["predict", *map(str, paths), "--out", str(out), "--checkpoint", str(tiny_checkpoint)])
    info = json.loads((out / "prediction.json").read_text())
    assert info["depth_units"] == "slices" and "not metres" in info["note"]


def test_predict_wrong_focus_count_is_a_clear_error(tmp_path, tiny_checkpoint):
    paths = write_loose_files(tmp_path)
    with pytest.raises(ValueError, match="focus"):
        main(["predict", *map(str, paths), "--focus", "0.5", "1.0", "--checkpoint", str(tiny_checkpoint)])


def test_predict_missing_path(tmp_path):
    with pytest.raises(SystemExit, match="not a file or scene folder"):
        main(["predict", str(tmp_path / "nope.png"), str(tmp_path / "nope2.png")])


def test_unknown_command():
    with pytest.raises(SystemExit, match="unknown command"):
        main(["frobnicate"])


def test_help_lists_commands(capsys):
    main([])
    out = capsys.readouterr().out
    for name in ("synth", "train", "predict", "eval", "fit", "convert", "export", "demo"):
        assert name in out
