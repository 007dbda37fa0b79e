"""Work splitting and scratch memory for the renderer.

Blocks keep temporaries small (cache-resident on CPU). On CPU, temporaries come from a per-thread
scratch cache that is reused across blocks and calls: every fresh multi-megabyte allocation is returned
to the OS on free and costs a page fault per 4 KiB on its next use, which made the renderer 1.5-3x
slower. Scratch tensors never leave the function that takes them (they are not returned or saved).
"""

from __future__ import annotations

import math
import threading

import torch

#: Elements of temporaries per block. On CPU a block should stay within the last-level cache; on a GPU
#: larger blocks amortise kernel launches.
CPU_BLOCK_ELEMENTS = 8 * 2**20
CUDA_BLOCK_ELEMENTS = 2**27


class _Scratch(threading.local):
    def __init__(self) -> None:
        self.buffers: dict[tuple[str, torch.dtype], torch.Tensor] = {}


_SCRATCH = _Scratch()


def scratch(name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """An uninitialised temporary of ``shape`` (dtype/device of ``like``), reused between calls on CPU.

    Each ``name`` is one buffer: two tensors taken under the same name alias each other.
    """
    if like.device.type != "cpu":
        return like.new_empty(shape)
    n = math.prod(shape)
    key = (name, like.dtype)
    buf = _SCRATCH.buffers.get(key)
    if buf is None or buf.numel() < n:
        buf = like.new_empty(n)
        _SCRATCH.buffers[key] = buf
    return buf[:n].view(shape)


def block_budget(device: torch.device) -> int:
    """Element budget of one block on ``device``."""
    return CPU_BLOCK_ELEMENTS if device.type == "cpu" else CUDA_BLOCK_ELEMENTS


def plan_blocks(items: int, rows: int, per_row: int, budget: int, min_rows: int = 8) -> list[tuple]:
    """Blocks ``(i0, i1, y0, y1)`` covering ``items`` x ``rows``.

    Whole items are grouped while one fits the budget; a larger item is cut into row bands of at least
    ``min_rows`` rows (bands carry a halo, so very thin ones waste work).

    Args:
        items: number of independent items (images or slices).
        rows: image height H.
        per_row: temporary elements one item needs per image row.
        budget: element budget per block.
    """
    per_item = per_row * rows
    if per_item <= budget:
        step = max(1, budget // per_item)
        return [(i, min(i + step, items), 0, rows) for i in range(0, items, step)]
    band = min(rows, max(min_rows, budget // per_row))
    return [(i, i + 1, y, min(y + band, rows)) for i in range(items) for y in range(0, rows, band)]
