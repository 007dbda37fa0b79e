from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import focalstack.eval.holdout as holdout
from focalstack.cli.eval import EvalCommand
from focalstack.data.stack import FocalStack
from focalstack.eval.holdout import HoldoutConfig, estimate_blur_scale, holdout_eval, holdout_stack
from focalstack.optics import ThinLens, render_from_depth

CAM = ThinLens(0.05, 8.0, 20e-6)
FOCUS = torch.tensor([0.5, 0.6, 0.75, 1.0, 1.5], dtype=torch.float64)
K = 9  # one window for synthesis and re-rendering keeps the 'gt' re-rendering exact


def _scene(size: int = 40, camera: ThinLens | None = CAM, name: str = "syn") -> FocalStack:
    x = torch.arange(size, dtype=torch.float64).expand(size, size)
    depth = (1.0 / (1 / 0.5 - (1 / 0.5 - 1 / 1.5) * x / (size - 1))).float()
    coarse = torch.nn.functional.interpolate(
        torch.rand(1, 3, size // 4, size // 4), size=(size, size), mode="bicubic"
    )
    aif = (0.7 * coarse.clamp(0, 1) + 0.3 * torch.rand(1, 3, size, size))[0]
    images = render_from_depth(
        aif[None],
        depth[None, None],
        FOCUS[None].float(),
        CAM.focal_length_m,
        CAM.f_number,
        CAM.pixel_size_m,
        kernel_size=K,
    )[0].clamp(0, 1)
    meta = {"camera": {"focal_length_m": CAM.focal_length_m, "f_number": CAM.f_number}}
    return FocalStack(images, FOCUS, camera, depth, aif, name, meta)


def test_gt_rerendering_is_near_perfect_and_beats_nearest() -> None:
    cfg = HoldoutConfig(methods=("gt", "dff", "nearest"), slices=(2,), kernel_size=K)
    r = holdout_stack(_scene(), cfg, progress=False)
    row = r["slices"][0]
    assert row["index"] == 2 and row["focus_m"] == pytest.approx(0.75)
    m = row["methods"]
    assert m["gt"]["psnr"] > 50 and m["gt"]["ssim"] > 0.999 and m["gt"]["blur_scale"] == 1.0
    assert m["nearest"]["nearest_slice"] in (1, 3)
    assert m["gt"]["psnr"] > m["nearest"]["psnr"] + 10
    assert m["dff"]["psnr"] > m["nearest"]["psnr"]
    assert r["mean"]["gt"]["psnr"] == m["gt"]["psnr"]
    assert "camera" in r["blur_scale_note"]


def test_renders_kept_only_on_request() -> None:
    cfg = HoldoutConfig(methods=("gt", "nearest"), slices=(2,), kernel_size=K)
    s = _scene()
    assert "renders" not in holdout_stack(s, cfg, progress=False)["slices"][0]
    row = holdout_stack(s, cfg, progress=False, keep_renders=True)["slices"][0]
    renders = row["renders"]
    assert set(renders) == {"real", "gt", "nearest"}
    torch.testing.assert_close(renders["real"], s.images[2])
    torch.testing.assert_close(renders["nearest"], s.images[row["methods"]["nearest"]["nearest_slice"]])
    assert renders["gt"].shape == (3, 40, 40)


def test_blur_scale_search_recovers_true_blur() -> None:
    s = _scene(32)
    nominal = ThinLens(CAM.focal_length_m, CAM.f_number, CAM.pixel_size_m * 3.0)  # blur 3x too small
    cfg = HoldoutConfig(methods=("gt",), kernel_size=K)
    scale = estimate_blur_scale(s.images[:2], FOCUS[:2], s.depth_m, s.aif, nominal, cfg)
    assert scale == pytest.approx(3.0, rel=0.05)


def test_blur_scale_never_sees_the_held_out_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def spy(images, focus_m, depth_m, aif, camera, cfg):
        seen.append((images.clone(), focus_m.clone()))
        return 1.0

    monkeypatch.setattr(holdout, "estimate_blur_scale", spy)
    s = _scene(24, camera=None)  # pixel pitch unknown -> the blur scale must be estimated
    r = holdout_stack(s, HoldoutConfig(methods=("gt",), slices=(1, 3), kernel_size=K), progress=False)
    assert len(seen) == 2 and "never used" in r["blur_scale_note"]
    for (images, focus), held in zip(seen, (1, 3)):
        assert images.shape[0] == 4 and float(FOCUS[held]) not in focus.tolist()
        assert not any(torch.equal(img, s.images[held]) for img in images)


def test_max_size_scales_pitch() -> None:
    cfg = HoldoutConfig(methods=("nearest",), max_size=20)
    r = holdout_stack(_scene(40), cfg, progress=False)
    assert r["size_hw"] == [20, 20]
    assert r["camera"]["pixel_size_m"] == pytest.approx(CAM.pixel_size_m * 2)
    assert [row["index"] for row in r["slices"]] == [1, 2, 3]  # interior slices by default


def test_align_option_keeps_most_of_an_aligned_stack() -> None:
    cfg = HoldoutConfig(methods=("nearest",), slices=(2,), align=True)
    r = holdout_stack(_scene(64), cfg, progress=False)
    assert r["aligned"] and min(r["size_hw"]) >= 56


def test_folder_skips_and_cli(tmp_path: Path) -> None:
    _scene(24, name="a").save(tmp_path / "scenes" / "a")
    FocalStack(torch.rand(3, 3, 8, 8), name="b").save(tmp_path / "scenes" / "b")
    report = holdout_eval(
        tmp_path / "scenes", HoldoutConfig(methods=("gt", "nearest"), slices=(2,), kernel_size=K)
    )
    assert [r["scene"] for r in report["scenes"]] == ["a"]
    assert report["skipped"] == {"b": "focus distances unknown"}
    assert report["mean"]["gt"]["psnr"] > report["mean"]["nearest"]["psnr"]

    out = tmp_path / "out"
    EvalCommand(
        holdout_slice=tmp_path / "scenes" / "a", method=("gt", "nearest"), slices=(2,), kernel_size=K, out=out
    ).run()
    data = json.loads((out / "holdout.json").read_text())
    assert data["scenes"][0]["scene"] == "a" and data["config"]["methods"] == ["gt", "nearest"]
    md = (out / "holdout.md").read_text()
    assert "| a | 1 |" in md and "gt PSNR / SSIM" in md


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="methods"):
        HoldoutConfig(methods=("magic",))
    with pytest.raises(ValueError, match="blur_scale"):
        HoldoutConfig(blur_scale="guess")
    with pytest.raises(ValueError, match="psf"):
        HoldoutConfig(psf="box")
    s = _scene(16)
    with pytest.raises(ValueError, match="out of range"):
        holdout_stack(s, HoldoutConfig(methods=("nearest",), slices=(7,)), progress=False)
    nearest = HoldoutConfig(methods=("nearest",))
    with pytest.raises(ValueError, match="focus distances"):
        holdout_stack(FocalStack(s.images), nearest, progress=False)
    with pytest.raises(ValueError, match=">= 3 slices"):
        holdout_stack(FocalStack(s.images[:2], FOCUS[:2]), nearest, progress=False)
    with pytest.raises(ValueError, match="ground-truth"):
        holdout_stack(
            FocalStack(s.images, FOCUS, CAM), HoldoutConfig(methods=("gt",), slices=(2,)), progress=False
        )
    with pytest.raises(ValueError, match="camera incomplete"):
        holdout_stack(
            _scene(16, camera=None), HoldoutConfig(methods=("gt",), blur_scale="camera"), progress=False
        )
    with pytest.raises(ValueError, match="no scene folder"):
        holdout_eval(Path(__file__).parent)


def test_fit_renders_with_the_holdout_psf(monkeypatch: pytest.MonkeyPatch) -> None:
    """``fit`` is scored through the renderer it fitted with: the holdout's PSF, unless overridden."""
    import types

    import focalstack.inference.fit as fit_module

    seen = []

    def fake_fit(stack, cfg, progress=True, device=None):
        seen.append(cfg.psf)
        depth = torch.full(stack.images.shape[-2:], 0.75)
        return types.SimpleNamespace(depth_m=depth, aif=stack.images.mean(dim=0))

    monkeypatch.setattr(fit_module, "fit_scene", fake_fit)
    for kwargs, expected in (({}, "disc"), ({"fit_kwargs": {"psf": "gaussian"}}, "gaussian")):
        cfg = HoldoutConfig(methods=("fit",), slices=(2,), kernel_size=K, psf="disc", **kwargs)
        holdout_stack(_scene(), cfg, progress=False)
        assert seen[-1] == expected
