from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_train_procedural_benchmark_short_run(tmp_path: Path) -> None:
    from benchmarks.train_procedural import METRICS, main

    out, md = tmp_path / "b.json", tmp_path / "b.md"
    args = [
        "--minutes",
        "0.2",
        "--scenes",
        "2",
        "--speed-steps",
        "1",
        "--pool",
        "4",
        "--run",
        str(tmp_path / "run"),
        "--out",
        str(out),
        "--md",
        str(md),
    ]
    main(args)
    payload = json.loads(out.read_text())
    assert set(payload["results"]) == {
        "daifnet-attn w8 trained",
        "daifnet-attn w8 untrained",
        "constant (mid range)",
        "DFF (classical)",
    }
    for row in payload["results"].values():
        assert set(row) == set(METRICS)
        assert 0.0 <= row["delta1"] <= 1.0 and row["absrel"] >= 0.0 and row["error_slices"] >= 0.0
    assert payload["training"]["steps"] >= 1
    assert 0.0 < payload["speed"]["render_share"] < 1.0
    assert "| DFF (classical) |" in md.read_text()


def test_ablation_variants_change_exactly_one_thing(tmp_path: Path) -> None:
    import dataclasses

    from benchmarks.ablations import VARIANTS, variant_config
    from focalstack.train.config import diff

    base = variant_config("base", tmp_path, 1.0)
    for name, (_, overrides) in VARIANTS.items():
        cfg = variant_config(name, tmp_path / name, 1.0)
        cfg.validate()
        for key, value in overrides.items():
            section, field = key.split(".")
            assert getattr(getattr(cfg, section), field) == value
        if cfg.data.num_slices != 5:  # the procedural scenes must offer that many slices
            assert cfg.data.procedural.num_slices == (cfg.data.num_slices,) * 2
        changed = diff(dataclasses.replace(base, out=cfg.out), cfg)
        assert len(changed) <= len(overrides) + 1, (name, changed)


@pytest.mark.slow
def test_ablation_benchmark_short_run(tmp_path: Path) -> None:
    from benchmarks.ablations import main

    out, md = tmp_path / "a.json", tmp_path / "a.md"
    main(
        [
            "--minutes",
            "0.1",
            "--only",
            "base",
            "width-4",
            "--a-scenes",
            "1",
            "--runs",
            str(tmp_path / "r"),
            "--out",
            str(out),
            "--md",
            str(md),
        ]
    )
    results = json.loads(out.read_text())["results"]
    assert [r["variant"] for r in results] == ["base", "width-4"]
    for r in results:
        assert r["training"]["steps"] >= 1 and 0 <= r["scores"]["procedural"]["delta1"] <= 1
    assert "| width | width-4 |" in md.read_text()


@pytest.mark.usefixtures("small_noise_reference")
def test_fit_procedural_benchmark_tiny_run(tmp_path: Path) -> None:
    from benchmarks.fit_procedural import VARIANTS, fit_config, main
    from focalstack.inference.fit import FitConfig

    fit_config = fit_config.__wrapped__  # the real one (small_noise_reference patches it for the run)

    out, md = tmp_path / "f.json", tmp_path / "f.md"
    payload = main(["--seeds", "5", "--scenes", "1", "--iterations", "2", "--out", str(out), "--md", str(md)])
    methods = [r["method"] for r in payload["rows"]]
    assert methods == list(VARIANTS)
    first = fit_config(2, VARIANTS["fit: SSIM range 1, sRGB blur, DFF init"])
    assert (first.init, first.loss.ssim_range, first.loss.linear_light) == ("dff", 1.0, False)
    default = VARIANTS["fit: + AIF prior after the depth (default)"]
    assert fit_config(2, default) == FitConfig(iterations=2)
    assert fit_config(2, VARIANTS["fit: + noise reference per intensity"]).aif_prior == "joint"
    assert fit_config(2, VARIANTS["fit: + PSF chosen per stack"]).loss.sweep_noise_levels == 1
    assert fit_config(2, VARIANTS["fit: + PSF chosen per stack"]).aif_prior == "joint"
    semi_global = fit_config(2, VARIANTS["fit: + semi-global sweep"])
    assert semi_global.psf == "gaussian"
    assert semi_global.loss.sweep_penalties == FitConfig().loss.sweep_penalties
    assert fit_config(2, VARIANTS["fit: + disc PSF"]).psf == "disc"
    assert fit_config(2, VARIANTS["fit: + sweep init"]).loss.sweep_penalties is None
    for row in payload["rows"]:
        assert 0.0 <= row["delta1"] <= 1.0 and row["absrel"] >= 0.0 and row["error_slices"] >= 0.0
    assert json.loads(out.read_text())["rows"] == payload["rows"]
    assert "| 5 | 1 | fit: + AIF prior after the depth (default) |" in md.read_text()
    # --merge keeps the other variants' rows and replaces the rerun ones
    merge = ["--seeds", "5", "--scenes", "1", "--out", str(out), "--md", str(md)]
    merge += ["--variants", "DFF (classical)", "--merge"]
    again = main([*merge, "--iterations", "2"])
    assert again["rows"] == payload["rows"]
    with pytest.raises(SystemExit, match="merge"):
        main([*merge, "--iterations", "3"])
    with pytest.raises(SystemExit):
        main(["--seeds", "5", "6", "--scenes", "1"])
