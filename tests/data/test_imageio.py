"""Image and depth-PNG reading/writing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from focalstack.data.imageio import read_depth_png, read_image, read_images, write_depth_png, write_image


def _blocky(h: int = 24, w: int = 40) -> np.ndarray:
    """A uint8 RGB image of flat 4x4 blocks (survives JPEG almost losslessly; every pixel distinct enough)."""
    rng = np.random.default_rng(0)
    return np.kron(rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8), np.ones((4, 4, 1), np.uint8))


def test_png_8bit_roundtrip(tmp_path):
    img = torch.rand(3, 17, 23)
    write_image(tmp_path / "a.png", img)
    back = read_image(tmp_path / "a.png")
    assert back.shape == (3, 17, 23) and back.dtype == torch.float32
    assert (back - img).abs().max() <= 0.5 / 255 + 1e-6


def test_png_16bit_keeps_precision(tmp_path):
    img = torch.rand(3, 9, 11)
    write_image(tmp_path / "a.png", img, bits=16)
    back = read_image(tmp_path / "a.png")
    assert (back - img).abs().max() <= 0.5 / 65535 + 1e-7
    # Decoding through 8 bits would put every value on the 1/255 grid.
    assert ((back * 255 - (back * 255).round()).abs() > 0.01).any()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_matches_pillow(tmp_path, orientation):
    im = Image.fromarray(_blocky())
    exif = im.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    im.save(path, exif=exif, quality=100)
    reference = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"), dtype=np.float32) / 255
    got = read_image(path)
    assert tuple(got.shape) == (3, *reference.shape[:2])
    assert np.abs(got.permute(1, 2, 0).numpy() - reference).max() <= 3 / 255


def test_gray_palette_rgba_become_rgb(tmp_path):
    rgb = _blocky(8, 12)
    gray = rgb[..., 0]
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "pal.png")
    rgba = np.concatenate([rgb, np.full((8, 12, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    g16 = (np.arange(96, dtype=np.uint16).reshape(8, 12) * 600).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), g16)

    g = read_image(tmp_path / "gray.png")
    assert g.shape == (3, 8, 12)
    assert torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])
    assert torch.allclose(g[0], torch.from_numpy(gray / 255.0).float())
    p = read_image(tmp_path / "pal.png")
    pal_ref = np.asarray(Image.open(tmp_path / "pal.png").convert("RGB"), dtype=np.float32) / 255
    assert np.allclose(p.permute(1, 2, 0).numpy(), pal_ref)
    a = read_image(tmp_path / "rgba.png")  # alpha dropped, colours as stored
    assert torch.allclose(a, torch.from_numpy(rgb / 255.0).permute(2, 0, 1).float())
    h = read_image(tmp_path / "g16.png")
    assert torch.allclose(h[1], torch.from_numpy(g16 / 65535.0).float())


def test_read_images_stacks_same_size_files(tmp_path):
    imgs = [torch.rand(3, 6, 7) for _ in range(3)]
    for i, img in enumerate(imgs):
        write_image(tmp_path / f"{i}.png", img, bits=16 if i == 1 else 8)
    both = read_images([tmp_path / f"{i}.png" for i in range(3)])
    assert both.shape == (3, 3, 6, 7)
    for i in range(3):
        assert torch.equal(both[i], read_image(tmp_path / f"{i}.png"))
    write_image(tmp_path / "odd.png", torch.rand(3, 6, 8))
    with pytest.raises(ValueError, match=r"odd\.png is 8x6"):
        read_images([tmp_path / "0.png", tmp_path / "odd.png"])
    with pytest.raises(ValueError, match="no image files"):
        read_images([])


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read image .*missing\.png"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=r"cannot read image .*junk\.jpg"):
        read_image(tmp_path / "junk.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png"):
        read_image(tmp_path / "empty.png")


def test_write_errors_and_atomicity(tmp_path):
    img = torch.rand(3, 4, 5)
    with pytest.raises(ValueError, match="16-bit"):
        write_image(tmp_path / "a.jpg", img, bits=16)
    with pytest.raises(ValueError, match="bits"):
        write_image(tmp_path / "a.png", img, bits=12)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        write_image(tmp_path / "a.png", torch.rand(4, 4, 5))
    bad = img.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "a.png", bad)
    with pytest.raises(ValueError, match="format"):
        write_image(tmp_path / "a.xyz", img)
    write_image(tmp_path / "sub" / "b.jpg", img)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["b.jpg"]  # no temporaries left


def test_write_clips_and_accepts_gray(tmp_path):
    write_image(tmp_path / "g.png", torch.tensor([[-0.5, 0.5], [1.0, 2.0]]))
    back = read_image(tmp_path / "g.png")
    assert torch.allclose(back[2], torch.tensor([[0.0, 128 / 255], [1.0, 1.0]]))


def test_depth_png_roundtrip(tmp_path):
    depth = torch.tensor([[0.0, 1.2344], [65.535, float("nan")]])
    write_depth_png(tmp_path / "d.png", depth)
    raw = cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.tolist() == [[0, 1234], [65535, 0]]  # millimetres, NaN -> 0
    back = read_depth_png(tmp_path / "d.png")
    assert torch.allclose(back, torch.tensor([[0.0, 1.234], [65.535, 0.0]]), atol=1e-6)
    write_depth_png(tmp_path / "d2.png", torch.tensor([[1.0, 2.0]]), scale_m=1e-4)
    assert torch.allclose(read_depth_png(tmp_path / "d2.png", scale_m=1e-4), torch.tensor([[1.0, 2.0]]))


def test_depth_png_errors(tmp_path):
    with pytest.raises(ValueError, match="negative"):
        write_depth_png(tmp_path / "d.png", torch.tensor([[-1.0]]))
    with pytest.raises(ValueError, match="16-bit range"):
        write_depth_png(tmp_path / "d.png", torch.tensor([[70.0]]))
    with pytest.raises(ValueError, match=".png"):
        write_depth_png(tmp_path / "d.jpg", torch.tensor([[1.0]]))
    write_image(tmp_path / "rgb.png", torch.rand(3, 4, 4))
    with pytest.raises(ValueError, match="single-channel"):
        read_depth_png(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="nope.png"):
        read_depth_png(tmp_path / "nope.png")
