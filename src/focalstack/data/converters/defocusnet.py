"""DefocusNet / FoD500 (Maximov et al., CVPR 2020, "Focus on Defocus") -> scene folders.

Layout (one flat folder, as the public loaders of DefocusNet, DFV and DEReD read it): files whose name
starts with a 6-digit sample id, e.g. ``000123``;

- ``<id>...All.tif``: the focal-stack slices of the sample, in focus order when sorted by name (5 per
  sample, focus distances 0.1, 0.15, 0.3, 0.7, 1.5 m);
- ``<id>...Dpt.exr``: depth in metres (OpenEXR, half-float, value in the R channel, rendered by
  Blender); or ``<id>...Dpt.png`` (the DEReD conversion: uint16 centimetres, scale 0.01) or
  ``<id>...Dpt.npy`` (metres);
- ``<id>...Aif.tif`` (optional, some re-renders): the all-in-focus image.

The first 400 samples are the usual training set and the last 100 the test set (FoD500). Camera
(DefocusNet README): f = 2.9 mm, N = 1; the pixel pitch is not published, so the camera is written
only when ``pixel_size_m`` is given (otherwise a partial camera dict). DefocusNet's loaders clip
depth at 3 m (``max_valid_depth_m=3`` marks farther pixels invalid instead).

The OpenCV build in use has no OpenEXR codec, so :func:`read_exr` decodes scan-line EXR files itself:
compression NONE, RLE, ZIPS and ZIP (Blender's default is ZIP); PIZ, PXR24, B44 and DWA files raise
``ValueError`` -- convert them (e.g. with ``oiiotool``) or provide ``Dpt.png`` / ``Dpt.npy`` depth.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from focalstack.data.imageio import read_image
from focalstack.data.rgbd import read_depth_file
from focalstack.data.stack import FocalStack
from focalstack.optics.camera import ThinLens

DEFOCUSNET_FOCUS_M = (0.1, 0.15, 0.3, 0.7, 1.5)
DEFOCUSNET_FOCAL_LENGTH_M = 2.9e-3
DEFOCUSNET_F_NUMBER = 1.0
DEFOCUSNET_DEPTH_PNG_SCALE_M = 0.01

_EXR_MAGIC = 20000630
# compression code -> (name, scan lines per chunk)
_EXR_COMPRESSION = {
    0: ("NONE", 1),
    1: ("RLE", 1),
    2: ("ZIPS", 1),
    3: ("ZIP", 16),
    4: ("PIZ", 32),
    5: ("PXR24", 16),
    6: ("B44", 32),
    7: ("B44A", 32),
    8: ("DWAA", 32),
    9: ("DWAB", 256),
}
# pixel type code -> (numpy dtype, bytes)
_EXR_PIXEL = {0: (np.dtype("<u4"), 4), 1: (np.dtype("<f2"), 2), 2: (np.dtype("<f4"), 4)}
_SAMPLE_ID = re.compile(r"^(\d{6})")
_ROLES = {"All": "slices", "Dpt": "depth", "Aif": "aif"}  # file-name stem ending -> role


# ----------------------------------------------------------------------------------------------------
# Minimal OpenEXR scan-line reader


def _cstr(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(b"\0", pos)
    return buf[pos:end].decode("latin-1"), end + 1


def _parse_exr_header(buf: bytes, path: Path) -> tuple[dict[str, bytes], int]:
    magic, version = struct.unpack_from("<ii", buf, 0)
    if magic != _EXR_MAGIC:
        raise ValueError(f"{path} is not an OpenEXR file")
    if version & 0x1A00:  # tiled (0x200), deep (0x800) or multi-part (0x1000)
        raise ValueError(f"{path}: only single-part scan-line OpenEXR files are supported")
    attrs: dict[str, bytes] = {}
    pos = 8
    while buf[pos] != 0:
        name, pos = _cstr(buf, pos)
        _, pos = _cstr(buf, pos)  # attribute type name
        (size,) = struct.unpack_from("<i", buf, pos)
        attrs[name] = buf[pos + 4 : pos + 4 + size]
        pos += 4 + size
    return attrs, pos + 1


def _parse_channels(raw: bytes) -> list[tuple[str, int]]:
    channels, pos = [], 0
    while raw[pos] != 0:
        name, pos = _cstr(raw, pos)
        pixel_type, _, x_sampling, y_sampling = struct.unpack_from("<iB3xii", raw, pos)
        if pixel_type not in _EXR_PIXEL:
            raise ValueError(f"EXR channel {name!r} has unknown pixel type {pixel_type}")
        if (x_sampling, y_sampling) != (1, 1):
            raise ValueError(
                f"EXR channel {name!r} is subsampled ({x_sampling}, {y_sampling}); not supported"
            )
        channels.append((name, pixel_type))
        pos += 16
    return channels


def _undo_zip_predictor(data: bytes) -> bytes:
    """Undo OpenEXR's byte delta predictor and its even/odd byte interleaving (RLE, ZIP, ZIPS)."""
    t = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    t[1:] -= 128
    t = (np.cumsum(t) % 256).astype(np.uint8)  # t[i] = t[i-1] + d[i] - 128
    half = (t.size + 1) // 2
    out = np.empty_like(t)
    out[0::2], out[1::2] = t[:half], t[half:]
    return out.tobytes()


def _rle_decode(data: bytes) -> bytes:
    out, pos = bytearray(), 0
    while pos < len(data):
        count = struct.unpack_from("b", data, pos)[0]
        if count < 0:
            out += data[pos + 1 : pos + 1 - count]
            pos += 1 - count
        else:
            out += data[pos + 1 : pos + 2] * (count + 1)
            pos += 2
    return bytes(out)


def read_exr(path: str | os.PathLike[str], channel: str | None = None) -> np.ndarray:
    """Read one channel of a scan-line OpenEXR file (compression NONE, RLE, ZIPS or ZIP).

    Args:
        path: ``.exr`` file.
        channel: channel name; default ``R``, else ``Y``, ``Z``, else the first channel.

    Returns:
        (H, W) float32 array (top row first).

    Raises:
        ValueError: not an EXR file, an unsupported compression/layout, or a missing channel.
    """
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read EXR {path}: {e.strerror or e}") from e
    try:
        return _decode_exr(buf, path, channel)
    except (struct.error, IndexError, zlib.error) as e:
        raise ValueError(f"cannot decode EXR {path}: corrupt or truncated ({e})") from e


def _decode_exr(buf: bytes, path: Path, channel: str | None) -> np.ndarray:
    attrs, pos = _parse_exr_header(buf, path)
    for key in ("channels", "compression", "dataWindow"):
        if key not in attrs:
            raise ValueError(f"EXR {path} lacks the required {key!r} attribute")
    channels = _parse_channels(attrs["channels"])
    compression = attrs["compression"][0]
    name, lines_per_chunk = _EXR_COMPRESSION.get(compression, (f"code {compression}", 0))
    if name not in ("NONE", "RLE", "ZIPS", "ZIP"):
        raise ValueError(f"EXR {path} uses {name} compression; supported: NONE, RLE, ZIPS, ZIP")
    x0, y0, x1, y1 = struct.unpack("<iiii", attrs["dataWindow"])
    width, height = x1 - x0 + 1, y1 - y0 + 1
    names = [c for c, _ in channels]
    want = channel or next((c for c in ("R", "Y", "Z") if c in names), names[0] if names else None)
    if want not in names:
        raise ValueError(f"EXR {path} has no channel {want!r} (channels: {names})")
    row_bytes = [(c, t, width * _EXR_PIXEL[t][1]) for c, t in channels]
    line_size = sum(b for _, _, b in row_bytes)
    n_chunks = -(-height // lines_per_chunk)
    offsets = struct.unpack_from(f"<{n_chunks}Q", buf, pos)
    out = np.empty((height, width), dtype=np.float32)
    for off in offsets:
        y, size = struct.unpack_from("<ii", buf, off)
        rows = min(lines_per_chunk, y1 - y + 1)
        data = buf[off + 8 : off + 8 + size]
        if size < rows * line_size:  # stored uncompressed when compression would not help
            data = _undo_zip_predictor(zlib.decompress(data) if name != "RLE" else _rle_decode(data))
        if len(data) < rows * line_size:
            raise ValueError(f"cannot decode EXR {path}: chunk at line {y} is truncated")
        for r in range(rows):
            base = r * line_size
            for c, t, nbytes in row_bytes:
                if c == want:
                    line = np.frombuffer(data, dtype=_EXR_PIXEL[t][0], count=width, offset=base)
                    out[y - y0 + r] = line.astype(np.float32)
                base += nbytes
    return out


# ----------------------------------------------------------------------------------------------------
# FoD500 folders


def _group_samples(folder: Path) -> dict[str, dict[str, list[Path]]]:
    """sample id -> {"slices": [...All.tif], "depth": [...Dpt.*], "aif": [...Aif.tif]}."""
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a directory")
    groups: dict[str, dict[str, list[Path]]] = {}
    for p in sorted(folder.iterdir()):
        m = _SAMPLE_ID.match(p.name)
        if not m or not p.is_file():
            continue
        role = _ROLES.get(p.stem[-3:])
        if role is not None:
            groups.setdefault(m.group(1), {"slices": [], "depth": [], "aif": []})[role].append(p)
    return {k: v for k, v in groups.items() if v["slices"]}


def _read_depth(paths: list[Path], sample: str) -> torch.Tensor | None:
    if not paths:
        return None
    by_suffix = {p.suffix.lower(): p for p in paths}
    for suffix in (".exr", ".npy", ".png"):
        if suffix in by_suffix:
            p = by_suffix[suffix]
            if suffix == ".exr":
                d = torch.from_numpy(read_exr(p))
                return torch.where(torch.isfinite(d) & (d > 0), d, torch.zeros_like(d))
            return read_depth_file(p, DEFOCUSNET_DEPTH_PNG_SCALE_M)
    raise ValueError(f"sample {sample}: unsupported depth file {paths[0].name} (want .exr, .png or .npy)")


def count_defocusnet(folder: str | os.PathLike[str]) -> int:
    """Number of samples (6-digit ids with ``All.tif`` slices) in a DefocusNet / FoD500 folder."""
    return len(_group_samples(Path(folder)))


def iter_defocusnet(
    folder: str | os.PathLike[str],
    *,
    focus_m: Sequence[float] = DEFOCUSNET_FOCUS_M,
    pixel_size_m: float | None = None,
    indices: Sequence[int] | None = None,
    max_valid_depth_m: float | None = None,
) -> Iterator[FocalStack]:
    """Yield the focal stacks of a DefocusNet / FoD500 folder (layout in the module docstring).

    Args:
        folder: the flat dataset folder.
        focus_m: focus distances (metres) of the slices in name order.
        pixel_size_m: pixel pitch in metres, if known (completes the camera).
        indices: 0-based positions in the sorted sample list (default: all).
        max_valid_depth_m: depth beyond this (metres) is marked invalid (0).

    Yields:
        :class:`FocalStack` named ``defocusnet_<id>``.
    """
    groups = _group_samples(Path(folder))
    if not groups:
        raise ValueError(f"no DefocusNet samples (<6-digit id>...All.tif) in {folder}")
    ids = sorted(groups)
    selected = range(len(ids)) if indices is None else list(indices)
    bad = [i for i in selected if not 0 <= i < len(ids)]
    if bad:
        raise ValueError(f"indices {bad} out of range for {len(ids)} samples")
    partial = {"focal_length_m": DEFOCUSNET_FOCAL_LENGTH_M, "f_number": DEFOCUSNET_F_NUMBER}
    camera = (
        None
        if pixel_size_m is None
        else ThinLens(DEFOCUSNET_FOCAL_LENGTH_M, DEFOCUSNET_F_NUMBER, pixel_size_m)
    )
    for i in selected:
        sample = ids[i]
        files = groups[sample]
        if len(files["slices"]) != len(focus_m):
            raise ValueError(
                f"sample {sample} has {len(files['slices'])} slices but {len(focus_m)} focus distances"
            )
        images = torch.stack([read_image(p) for p in files["slices"]])
        depth = _read_depth(files["depth"], sample)
        if depth is not None and max_valid_depth_m is not None:
            depth = torch.where(depth > max_valid_depth_m, torch.zeros_like(depth), depth)
        aif = read_image(files["aif"][0]) if files["aif"] else None
        meta: dict[str, Any] = {
            "source": "DefocusNet / FoD500 (Maximov et al. 2020), Blender renders",
            "sample": sample,
            "files": [p.name for p in files["slices"]],
            "camera": partial,
            "note": "pixel pitch unpublished" if camera is None else "pixel pitch given by the user",
        }
        yield FocalStack(images, list(focus_m), camera, depth, aif, f"defocusnet_{sample}", meta)
