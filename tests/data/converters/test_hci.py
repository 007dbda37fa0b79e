"""HCI light fields: PFM/cfg parsing, shifts vs grid_sample, refocusing, thin-lens equivalence, and a
cross-check against ../shared/data/lightfield/antinous_stack (made from antinous_views)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from focalstack.data.converters.hci import (
    convert_hci_scene,
    default_focus_disparities,
    equivalent_thin_lens,
    find_hci_scenes,
    iter_hci,
    load_hci_views,
    read_hci_parameters,
    read_pfm,
    refocus_views,
    shift_image,
)
from focalstack.data.imageio import write_image
from focalstack.data.stack import FocalStack

CFG = """[intrinsics]
focal_length_mm = 100.0
image_resolution_x_px = {res}
image_resolution_y_px = {res}
sensor_size_mm = 35.0
fstop = 100.0

[extrinsics]
num_cams_x = {n}
num_cams_y = {n}
baseline_mm = 100.0
focus_distance_m = 7.0
{offset}
[meta]
scene = {scene}
disp_min = -0.4
disp_max = 0.4
"""


def _write_pfm(path: Path, arr: np.ndarray, little_endian: bool = True) -> None:
    kind = b"PF" if arr.ndim == 3 else b"Pf"
    h, w = arr.shape[:2]
    scale = b"-1.0" if little_endian else b"1.0"
    data = np.ascontiguousarray(arr[::-1]).astype("<f4" if little_endian else ">f4").tobytes()
    path.write_bytes(kind + b"\n" + f"{w} {h}".encode() + b"\n" + scale + b"\n" + data)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


def _write_scene(
    folder: Path, n: int = 3, res: int = 16, d0: float = 1.0, offset: bool = True
) -> torch.Tensor:
    """A fronto-parallel textured plane at disparity ``d0`` seen by an n x n grid; returns the texture."""
    folder.mkdir(parents=True)
    off = f"offset = {0.1 * 100 / 35 * res / 7.0}\n" if offset else ""
    (folder / "parameters.cfg").write_text(CFG.format(res=res, n=n, offset=off, scene="plane"))
    tex = torch.rand(3, res, res, generator=torch.Generator().manual_seed(0))
    c = (n - 1) / 2
    for r in range(n):
        for k in range(n):
            view = shift_image(tex, -(k - c) * d0, -(r - c) * d0)
            write_image(folder / f"input_Cam{r * n + k:03d}.png", view)
    disparity = np.tile(np.linspace(-0.3, 0.3, res, dtype=np.float32), (res, 1))
    _write_pfm(folder / "gt_disp_lowres.pfm", disparity)
    return tex


# ---------------------------------------------------------------------------------------------- files


def test_read_pfm_orientation_and_endianness(tmp_path: Path) -> None:
    grey = np.arange(12, dtype=np.float32).reshape(3, 4)
    _write_pfm(tmp_path / "g.pfm", grey)
    assert np.array_equal(read_pfm(tmp_path / "g.pfm"), grey)
    colour = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
    _write_pfm(tmp_path / "c.pfm", colour, little_endian=False)
    assert np.array_equal(read_pfm(tmp_path / "c.pfm"), colour)
    (tmp_path / "bad.pfm").write_bytes(b"P6\n4 3\n255\n")
    with pytest.raises(ValueError, match="not a PFM"):
        read_pfm(tmp_path / "bad.pfm")
    (tmp_path / "short.pfm").write_bytes(b"Pf\n4 3\n-1\n" + bytes(8))
    with pytest.raises(ValueError, match="truncated"):
        read_pfm(tmp_path / "short.pfm")


def test_parameters_and_depth_conversion(tmp_path: Path) -> None:
    (tmp_path / "a.cfg").write_text(CFG.format(res=512, n=9, offset="", scene="x"))
    p = read_hci_parameters(tmp_path / "a.cfg")
    assert p.focal_length_px == pytest.approx(100 / 35 * 512)
    assert p.offset_px == pytest.approx(0.1 * p.focal_length_px / 7.0)  # recomputed when absent
    assert p.disp_range_px == (-0.4, 0.4) and p.scene == "x" and p.num_cams == (9, 9)
    d = torch.linspace(-3, 3, 7, dtype=torch.float64)
    assert torch.allclose(p.depth_to_disparity_px(p.disparity_to_depth_m(d)), d)
    assert float(p.disparity_to_depth_m(torch.tensor(0.0))) == pytest.approx(7.0)  # focus plane
    assert float(p.disparity_to_depth_m(torch.tensor(1.0))) < 7.0  # positive disparity is nearer
    (tmp_path / "b.cfg").write_text("[intrinsics]\nfocal_length_mm = 1\n")
    with pytest.raises(ValueError, match="sensor_size_mm"):
        read_hci_parameters(tmp_path / "b.cfg")
    with pytest.raises(ValueError, match="cannot read"):
        read_hci_parameters(tmp_path / "missing.cfg")


# ---------------------------------------------------------------------------------------------- refocusing


@pytest.mark.parametrize("dx, dy", [(0.0, 0.0), (1.0, -2.0), (0.37, -1.61), (-4.75, 3.2), (12.5, 0.0)])
def test_shift_image_matches_grid_sample(dx: float, dy: float) -> None:
    img = torch.rand(3, 11, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    h, w = img.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    grid = torch.stack([(xs - dx + 0.5) / w * 2 - 1, (ys - dy + 0.5) / h * 2 - 1], -1)[None]
    ref = F.grid_sample(img[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    assert torch.allclose(shift_image(img, dx, dy), ref, atol=1e-12)


def test_refocus_brings_the_plane_into_focus() -> None:
    n, d0 = 5, 2.0
    tex = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(1))
    c = (n - 1) / 2
    views = torch.stack(
        [torch.stack([shift_image(tex, -(k - c) * d0, -(r - c) * d0) for k in range(n)]) for r in range(n)]
    )
    sharp, blurred = refocus_views(views, [d0, -d0], linear_light=False)
    inner = (slice(None), slice(8, -8), slice(8, -8))  # away from replicated borders
    assert torch.allclose(sharp[inner], tex[inner], atol=1e-5)
    assert _psnr(blurred[inner], tex[inner]) < 20
    lin_sharp = refocus_views(views, [d0], linear_light=True)[0]
    assert torch.allclose(lin_sharp[inner], tex[inner], atol=1e-4)
    half = refocus_views(views, [d0], linear_light=False, size=(12, 12))[0]
    assert torch.allclose(half, F.avg_pool2d(sharp[None], 2)[0], atol=1e-6)
    with pytest.raises(ValueError, match=r"\(ny, nx, 3, H, W\)"):
        refocus_views(views[0], [d0])
    with pytest.raises(ValueError, match="finite focus disparity"):
        refocus_views(views, [])


def test_equivalent_thin_lens_matches_box_aperture_blur(tmp_path: Path) -> None:
    (tmp_path / "p.cfg").write_text(CFG.format(res=512, n=9, offset="", scene="x"))
    p = read_hci_parameters(tmp_path / "p.cfg")
    cam = equivalent_thin_lens(p, (256, 256))
    assert cam.focal_length_m == pytest.approx(0.1) and cam.pixel_size_m == pytest.approx(0.035 / 256)
    spread = math.sqrt((9**2 - 1) / 12)  # per-axis std of 9 evenly spaced view positions, in baselines
    for d_f, d in [(1.0, -2.0), (-2.5, 2.5), (0.0, 1.2)]:
        depth, focus = (float(p.disparity_to_depth_m(torch.tensor(x))) for x in (d, d_f))
        box_std_px = abs(d - d_f) * spread * 256 / 512  # refocus blur std, in output pixels
        assert cam.sigma_px(depth, focus) == pytest.approx(box_std_px, rel=0.03)


def test_default_focus_disparities() -> None:
    disp = torch.linspace(-3, 3, 10001)
    got = default_focus_disparities(disp, 3)
    assert got == pytest.approx([2.88, 0.0, -2.88], abs=1e-3)  # 98th, 50th, 2nd percentiles
    with pytest.raises(ValueError, match="num_slices"):
        default_focus_disparities(disp, 1)


# ---------------------------------------------------------------------------------------------- scenes


def test_convert_synthetic_scene(tmp_path: Path) -> None:
    _write_scene(tmp_path / "plane", offset=False)
    stack = convert_hci_scene(tmp_path / "plane", num_slices=3, size=8)
    assert isinstance(stack, FocalStack) and stack.name == "plane"
    assert (
        stack.images.shape == (3, 3, 8, 8) and stack.aif.shape == (3, 8, 8) and stack.depth_m.shape == (8, 8)
    )
    assert stack.meta["focus_disparities_px"] == pytest.approx([0.3, 0.0, -0.3], abs=1e-6)
    assert stack.focus_m[0] < stack.focus_m[1] < stack.focus_m[2]  # near first
    assert stack.focus_m[1] == pytest.approx(7.0)
    assert stack.camera.pixel_size_m == pytest.approx(0.035 / 8)
    assert stack.meta["depth_range_m"][0] < 7.0 < stack.meta["depth_range_m"][1]
    explicit = convert_hci_scene(tmp_path / "plane", focus_disparities_px=[0.3, -0.3])
    assert explicit.images.shape == (2, 3, 16, 16)
    (tmp_path / "plane" / "gt_disp_lowres.pfm").unlink()
    no_gt = convert_hci_scene(tmp_path / "plane", num_slices=2)
    assert no_gt.depth_m is None and no_gt.meta["focus_disparities_px"] == [0.4, -0.4]  # cfg range
    assert find_hci_scenes(tmp_path) == [tmp_path / "plane"]
    assert [s.name for s in iter_hci(tmp_path, num_slices=2, size=4)] == ["plane"]


def test_convert_bad_scenes(tmp_path: Path) -> None:
    _write_scene(tmp_path / "s")
    (tmp_path / "s" / "input_Cam004.png").unlink()
    with pytest.raises(ValueError, match="input_Cam004.png"):
        convert_hci_scene(tmp_path / "s")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no HCI scene"):
        find_hci_scenes(tmp_path / "empty")
    _write_scene(tmp_path / "t")
    with pytest.raises(ValueError, match="size"):
        convert_hci_scene(tmp_path / "t", size=64)
    with pytest.raises(ValueError, match="behind the camera"):  # offset is 0.65 px at 16 px
        convert_hci_scene(tmp_path / "t", focus_disparities_px=[0.5, -1.0])


# ---------------------------------------------------------------------------------------------- shared data


def test_matches_shared_antinous_stack_on_a_crop(shared_data: Path) -> None:
    """Refocus a 160 px crop of the 512 px views at the reference's disparities; compare the interior
    of the 2x-downscaled result with the reference 256 px stack (whole-image check: the slow test)."""
    ref = FocalStack.load(shared_data / "lightfield" / "antinous_stack")
    views_dir = shared_data / "lightfield" / "antinous_views"
    params = read_hci_parameters(views_dir / "parameters.cfg")
    views = load_hci_views(views_dir, params)[..., 176:336, 176:336]
    disparities = ref.meta["focus_disparities_px"]
    out = refocus_views(views, disparities, size=(80, 80))
    margin = 10  # > max shift (4 x 3.06 px at 512) / 2, in 256 px units
    crop = (slice(None), slice(None), slice(88 + margin, 168 - margin), slice(88 + margin, 168 - margin))
    psnr = _psnr(out[:, :, margin:-margin, margin:-margin], ref.images[crop])
    assert psnr > 50, psnr  # 8-bit quantisation of the reference limits it to about 59 dB

    disparity = torch.from_numpy(read_pfm(views_dir / "gt_disp_lowres.pfm"))
    assert default_focus_disparities(disparity, 5) == pytest.approx(disparities, abs=1e-6)
    small = F.avg_pool2d(disparity[None, None].double(), 2)[0, 0]
    assert torch.allclose(params.disparity_to_depth_m(small).float(), ref.depth_m, atol=1e-4)
    focus = params.disparity_to_depth_m(torch.tensor(disparities, dtype=torch.float64))
    assert torch.allclose(focus, ref.focus_m, rtol=1e-9)
    cam = equivalent_thin_lens(params, ref.size)
    assert cam.focal_length_m == pytest.approx(ref.camera.focal_length_m)
    assert cam.f_number == pytest.approx(ref.camera.f_number)
    assert cam.pixel_size_m == pytest.approx(ref.camera.pixel_size_m)


@pytest.mark.slow
def test_full_conversion_matches_shared_antinous_stack(shared_data: Path) -> None:
    ref = FocalStack.load(shared_data / "lightfield" / "antinous_stack")
    stack = convert_hci_scene(
        shared_data / "lightfield" / "antinous_views",
        focus_disparities_px=ref.meta["focus_disparities_px"],
        size=256,
    )
    psnrs = [_psnr(a, b) for a, b in zip(stack.images, ref.images)]
    assert min(psnrs) > 55, psnrs
    assert _psnr(stack.aif, ref.aif) > 55
    assert torch.allclose(stack.depth_m, ref.depth_m, atol=1e-4)
    assert torch.allclose(stack.focus_m, ref.focus_m, rtol=1e-9)
    for key, value in ref.camera.to_dict().items():
        assert getattr(stack.camera, key) == pytest.approx(value)
