from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.fit_procedural import fit_config
from benchmarks.fit_validation import (
    DFF,
    FROM_TRUTH,
    RESIDUAL_VARIANTS,
    STEP_VARIANTS,
    main,
    parse_variant,
    train_scenes,
)
from tests.inference.test_fit import synthetic_stack


def test_parse_variant_makes_lists_tuples_and_rejects_non_objects() -> None:
    assert parse_variant("a", '{"sweep_penalties": [1, 2], "margin": 2}') == {
        "sweep_penalties": (1, 2),
        "margin": 2,
    }
    with pytest.raises(ValueError, match="'b'.*not JSON"):
        parse_variant("b", "{margin: 2}")
    with pytest.raises(ValueError, match="JSON object"):
        parse_variant("c", "[1, 2]")


def test_fit_config_routes_fit_fields_to_fitconfig_and_the_rest_to_the_loss() -> None:
    cfg = fit_config(2, {"margin": 2.5, "psf": "disc", "aif_weight": 0.0})
    assert (cfg.margin, cfg.psf, cfg.iterations, cfg.loss.aif_weight) == (2.5, "disc", 2, 0.0)


def test_train_scenes_takes_the_stride_in_name_order(tmp_path: Path) -> None:
    for name in ("s2", "s0", "s1", "s3"):
        synthetic_stack(size=16).save(tmp_path / name)
    assert [s.name for s in train_scenes(tmp_path, 2, 1)] == ["s1", "s3"]
    assert [s.name for s in train_scenes(tmp_path, 2, 1, ["s2", "s0"])] == ["s0", "s2"]  # names win
    with pytest.raises(SystemExit, match="s9"):
        train_scenes(tmp_path, 1, 0, ["s0", "s9"])
    with pytest.raises(SystemExit, match="no scene"):
        train_scenes(tmp_path, 1, 9)
    with pytest.raises(SystemExit, match="make_accuracy_data"):
        train_scenes(tmp_path / "missing", 1, 0)


@pytest.mark.usefixtures("small_noise_reference")
def test_main_scores_dff_and_each_variant_on_the_chosen_scenes(tmp_path: Path) -> None:
    for name in ("s0", "s1", "s2"):
        synthetic_stack(size=32, psf="disc").save(tmp_path / "A_train" / name)
    out, md = tmp_path / "v.json", tmp_path / "v.md"
    payload = main(
        ["--data", str(tmp_path / "A_train"), "--stride", "2", "--offset", "1", "--iterations", "3"]
        + [
            "--variant",
            "base",
            '{"psf": "disc"}',
            "--variant",
            "no prior",
            '{"psf": "disc", "aif_weight": 0}',
        ]
        + ["--from-truth", "--out", str(out), "--md", str(md)]
    )
    rows = {r["method"]: r for r in payload["rows"]}
    truth = f"base, {FROM_TRUTH}"
    assert list(rows) == [DFF, "base", truth, "no prior", f"no prior, {FROM_TRUTH}"]
    for row in rows.values():
        assert [s["scene"] for s in row["per_scene"]] == ["s1"]
        assert 0.0 <= row["delta1"] <= 1.0 and row["aif_psnr"] > 10.0
    assert rows["no prior"]["changes"] == {"psf": "disc", "aif_weight": 0}
    # the variant reaches the fit: without the AIF prior the AIF comes out different
    assert rows["no prior"]["aif_psnr"] != rows["base"]["aif_psnr"]
    # started from the truth, the fit stays nearer to it than from its own start
    assert rows[truth]["error_slices"] < rows["base"]["error_slices"]
    lower = sum(
        a["final_loss"] < b["final_loss"] for a, b in zip(*(rows[k]["per_scene"] for k in ("base", truth)))
    )
    assert rows["base"]["below_truth"] == f"{lower} / 1"
    assert json.loads(out.read_text())["rows"][3]["method"] == "no prior"
    assert "[1::2] (1)" in md.read_text()


@pytest.mark.usefixtures("small_noise_reference")
def test_steps_compares_the_step_schedules(tmp_path: Path) -> None:
    synthetic_stack(size=32, psf="disc").save(tmp_path / "A_train" / "s0")
    out, md = tmp_path / "s.json", tmp_path / "s.md"
    args = [
        "--data",
        str(tmp_path / "A_train"),
        "--stride",
        "1",
        "--offset",
        "0",
        "--iterations",
        "1",
        "--steps",
    ]
    payload = main([*args, "--out", str(out), "--md", str(md)])
    assert [r["method"] for r in payload["rows"]] == [DFF, *STEP_VARIANTS]
    assert [r["changes"] for r in payload["rows"][1:]] == [{}, {"step_growth": 2.0}]
    assert "1 it at full size" in md.read_text()


@pytest.mark.usefixtures("small_noise_reference")
def test_residual_blur_compares_the_sweeps_low_pass(tmp_path: Path) -> None:
    synthetic_stack(size=32, psf="disc").save(tmp_path / "A_train" / "s0")
    data = ["--data", str(tmp_path / "A_train"), "--stride", "1", "--offset", "0", "--iterations", "1"]
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    payload = main([*data, "--residual-blur", "--out", str(out), "--md", str(md)])
    assert [r["method"] for r in payload["rows"]] == [DFF, *RESIDUAL_VARIANTS]
    changes = [r["changes"] for r in payload["rows"][1:]]
    assert changes == [{"sweep_residual_blur_px": 0.0}, {}, {"sweep_residual_blur_px": 2.0}]
    assert fit_config(1, {}).loss.sweep_residual_blur_px == 1.0  # the row called the default is
    with pytest.raises(SystemExit):
        main([*data, "--residual-blur", "--steps"])
