"""DefocusNet / FoD500: the OpenEXR reader on files written here per the OpenEXR layout, and the folder
grouping by 6-digit sample id."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from focalstack.data.converters.defocusnet import (
    DEFOCUSNET_FOCUS_M,
    count_defocusnet,
    iter_defocusnet,
    read_exr,
)
from focalstack.data.imageio import write_image

_COMPRESSION = {"NONE": (0, 1), "RLE": (1, 1), "ZIPS": (2, 1), "ZIP": (3, 16), "PIZ": (4, 32)}


def _attr(name: str, type_name: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + type_name.encode() + b"\0" + struct.pack("<i", len(value)) + value


def _predict_and_interleave(raw: bytes) -> bytes:
    """OpenEXR's encoder side: even bytes then odd bytes, then byte deltas + 128."""
    t = np.frombuffer(raw, dtype=np.uint8)
    t = np.concatenate([t[0::2], t[1::2]]).astype(np.int64)
    d = t.copy()
    d[1:] = (t[1:] - t[:-1] + 128) % 256
    return d.astype(np.uint8).tobytes()


def _rle_encode(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(data):
        run = 1
        while i + run < len(data) and data[i + run] == data[i] and run < 128:
            run += 1
        if run >= 3:
            out += struct.pack("b", run - 1) + data[i : i + 1]
            i += run
        else:
            j = i
            while (
                j < len(data)
                and j - i < 127
                and not (j + 2 < len(data) and data[j] == data[j + 1] == data[j + 2])
            ):
                j += 1
            out += struct.pack("b", -(j - i)) + data[i:j]
            i = j
    return bytes(out)


def write_exr(path: Path, channels: dict[str, np.ndarray], compression: str = "ZIP") -> None:
    """A scan-line OpenEXR file; arrays are float16 (HALF) or float32 (FLOAT), all (H, W)."""
    names = sorted(channels)  # OpenEXR stores channels alphabetically
    h, w = channels[names[0]].shape
    chlist = b""
    for name in names:
        ptype = 1 if channels[name].dtype == np.float16 else 2
        chlist += name.encode() + b"\0" + struct.pack("<iB3xii", ptype, 0, 1, 1)
    chlist += b"\0"
    code, lines = _COMPRESSION[compression]
    window = struct.pack("<iiii", 0, 0, w - 1, h - 1)
    header = (
        struct.pack("<ii", 20000630, 2)
        + _attr("channels", "chlist", chlist)
        + _attr("compression", "compression", bytes([code]))
        + _attr("dataWindow", "box2i", window)
        + _attr("displayWindow", "box2i", window)
        + _attr("lineOrder", "lineOrder", b"\0")
        + _attr("pixelAspectRatio", "float", struct.pack("<f", 1.0))
        + _attr("screenWindowCenter", "v2f", struct.pack("<ff", 0, 0))
        + _attr("screenWindowWidth", "float", struct.pack("<f", 1.0))
        + b"\0"
    )
    chunks = []
    for y in range(0, h, lines):
        raw = b"".join(
            channels[name][row].astype("<f2" if channels[name].dtype == np.float16 else "<f4").tobytes()
            for row in range(y, min(y + lines, h))
            for name in names
        )
        if compression in ("ZIP", "ZIPS"):
            packed = zlib.compress(_predict_and_interleave(raw))
        elif compression == "RLE":
            packed = _rle_encode(_predict_and_interleave(raw))
        else:
            packed = raw
        if len(packed) >= len(raw):
            packed = raw  # OpenEXR stores a chunk raw when compression does not help
        chunks.append(struct.pack("<ii", y, len(packed)) + packed)
    offset = len(header) + 8 * len(chunks)
    table = b""
    for chunk in chunks:
        table += struct.pack("<Q", offset)
        offset += len(chunk)
    path.write_bytes(header + table + b"".join(chunks))


@pytest.mark.parametrize("compression", ["NONE", "RLE", "ZIPS", "ZIP"])
def test_read_exr_roundtrip(tmp_path: Path, compression: str) -> None:
    g = np.random.default_rng(0)
    depth = np.round(g.uniform(0.1, 3.0, (21, 13)), 1).astype(np.float16)  # repeats exercise RLE runs
    depth[:, :8] = 1.5
    other = np.repeat(g.standard_normal((21, 1)), 13, axis=1).astype(np.float32)
    channels = {"R": depth, "G": depth, "B": depth, "Z": other}
    write_exr(tmp_path / "d.exr", channels, compression)
    write_exr(tmp_path / "raw.exr", channels, "NONE")
    if compression != "NONE":  # the chunks really are compressed, so decoding is exercised
        assert (tmp_path / "d.exr").stat().st_size < (tmp_path / "raw.exr").stat().st_size
    assert np.array_equal(read_exr(tmp_path / "d.exr"), depth.astype(np.float32))
    assert np.array_equal(read_exr(tmp_path / "d.exr", "Z"), other)


def test_read_exr_rejects_what_it_cannot_read(tmp_path: Path) -> None:
    write_exr(tmp_path / "piz.exr", {"R": np.ones((4, 4), np.float16)}, "NONE")
    data = bytearray((tmp_path / "piz.exr").read_bytes())
    at = data.index(b"compression\0compression\0") + len(b"compression\0compression\0") + 4
    data[at] = 4
    (tmp_path / "piz.exr").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="PIZ"):
        read_exr(tmp_path / "piz.exr")
    write_exr(tmp_path / "ok.exr", {"R": np.ones((2, 2), np.float16)})
    with pytest.raises(ValueError, match="channel 'Q'"):
        read_exr(tmp_path / "ok.exr", "Q")
    (tmp_path / "not.exr").write_bytes(b"\x89PNG" + bytes(20))
    with pytest.raises(ValueError, match="not an OpenEXR"):
        read_exr(tmp_path / "not.exr")
    full = (tmp_path / "ok.exr").read_bytes()
    (tmp_path / "cut.exr").write_bytes(full[: len(full) - 6])
    with pytest.raises(ValueError, match="truncated"):
        read_exr(tmp_path / "cut.exr")
    (tmp_path / "cut.exr").write_bytes(full[:30])
    with pytest.raises(ValueError, match="truncated"):
        read_exr(tmp_path / "cut.exr")


def _write_sample(folder: Path, sample: str, depth: np.ndarray | None, depth_kind: str = "exr") -> None:
    g = torch.Generator().manual_seed(int(sample))
    for k in range(5):
        write_image(folder / f"{sample}{k:02d}All.tif", torch.rand(3, *depth.shape, generator=g))
    if depth_kind == "exr":
        write_exr(folder / f"{sample}Dpt.exr", {c: depth.astype(np.float16) for c in "RGB"})
    elif depth_kind == "png":  # the DEReD conversion: centimetres
        assert cv2.imwrite(str(folder / f"{sample}Dpt.png"), np.round(depth * 100).astype(np.uint16))


def test_iter_defocusnet_groups_by_sample(tmp_path: Path) -> None:
    depth = np.linspace(0.2, 4.0, 8 * 6, dtype=np.float32).reshape(8, 6)
    _write_sample(tmp_path, "000000", depth)
    _write_sample(tmp_path, "000001", depth, "png")
    write_image(tmp_path / "000001Aif.tif", torch.full((3, 8, 6), 0.5))
    (tmp_path / "notes.txt").write_text("ignored")
    assert count_defocusnet(tmp_path) == 2
    first, second = iter_defocusnet(tmp_path)
    assert first.name == "defocusnet_000000" and first.images.shape == (5, 3, 8, 6)
    assert first.focus_m.tolist() == pytest.approx(list(DEFOCUSNET_FOCUS_M))
    assert first.camera is None and first.meta["camera"] == {"focal_length_m": 2.9e-3, "f_number": 1.0}
    assert torch.allclose(first.depth_m, torch.from_numpy(depth.astype(np.float16).astype(np.float32)))
    assert torch.allclose(second.depth_m, torch.from_numpy(depth), atol=0.005)
    assert first.aif is None and torch.allclose(second.aif, torch.full((3, 8, 6), 0.5), atol=1 / 255)
    (capped,) = iter_defocusnet(tmp_path, indices=[0], pixel_size_m=5e-6, max_valid_depth_m=3.0)
    assert capped.camera.pixel_size_m == 5e-6 and capped.depth_m.max() <= 3.0 and (capped.depth_m == 0).any()


def test_iter_defocusnet_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no DefocusNet samples"):
        list(iter_defocusnet(tmp_path))
    _write_sample(tmp_path, "000007", np.ones((4, 4), np.float32), depth_kind="none")
    (only,) = iter_defocusnet(tmp_path)
    assert only.depth_m is None
    with pytest.raises(ValueError, match="5 slices but 3 focus distances"):
        list(iter_defocusnet(tmp_path, focus_m=(0.1, 0.2, 0.3)))
    with pytest.raises(ValueError, match="out of range"):
        list(iter_defocusnet(tmp_path, indices=[1]))
    with pytest.raises(ValueError, match="not a directory"):
        list(iter_defocusnet(tmp_path / "missing"))
