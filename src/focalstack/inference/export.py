"""Export a trained model to ONNX or TorchScript for deployment outside Python/PyTorch training code.

The exported graph takes ``stack (B, S, 3, H, W)`` sRGB in [0, 1] and ``focus_u (B, S)`` (normalised
focus, docs/CONVENTIONS.md) and returns ``aif (B, 3, H, W)`` and ``t (B, 1, H, W)``. In ONNX, B, S, H
and W are dynamic. TorchScript falls back to tracing (the model's input checks and padding are Python
control flow), which fixes S, H and W to the example's: export at the size you will run. Converting
``t`` to metres is ``focalstack.data.normalize.t_to_depth``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from focalstack.utils.io import atomic_path


class TupleOutput(nn.Module):
    """Wraps a focalstack model so it returns ``(aif, t)`` instead of a dict (exporters need tuples)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, stack: torch.Tensor, focus_u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(stack, focus_u)
        return out["aif"], out["t"]


def example_inputs(
    num_slices: int = 5, size: tuple[int, int] = (96, 128)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random example inputs ``(stack (1, S, 3, H, W), focus_u (1, S))`` for tracing/export."""
    gen = torch.Generator().manual_seed(0)
    stack = torch.rand(1, num_slices, 3, *size, generator=gen)
    focus_u = torch.linspace(0.2, 0.8, num_slices)[None]
    return stack, focus_u


def export_model(
    model: nn.Module,
    path: str | Path,
    fmt: Literal["onnx", "torchscript"],
    *,
    num_slices: int = 5,
    size: tuple[int, int] = (96, 128),
) -> Path:
    """Export ``model`` to ``path`` (written atomically).

    Args:
        model: a focalstack model (forward(stack, focus_u) -> {"aif", "t"}).
        path: output file (.onnx or .pt).
        fmt: "onnx" (dynamo exporter, dynamic B, S, H, W) or "torchscript" (scripted when possible,
            else traced at the example shape).
        num_slices, size: shape of the example input used for export.

    Returns:
        The written path.
    """
    wrapped = TupleOutput(model).eval()
    args = example_inputs(num_slices, size)
    target = Path(path)
    with atomic_path(target) as tmp:
        if fmt == "onnx":
            _export_onnx(wrapped, args, tmp)
        elif fmt == "torchscript":
            _export_torchscript(wrapped, args, tmp)
        else:
            raise ValueError(f"unknown export format {fmt!r} (onnx or torchscript)")
    return target


def _export_onnx(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path) -> None:
    batch, slices = torch.export.Dim("batch", max=64), torch.export.Dim("slices", min=2, max=64)
    height, width = torch.export.Dim("height", min=8, max=8192), torch.export.Dim("width", min=8, max=8192)
    dynamic = {"stack": {0: batch, 1: slices, 3: height, 4: width}, "focus_u": {0: batch, 1: slices}}
    with torch.no_grad():
        program = torch.onnx.export(
            model,
            args,
            dynamo=True,
            dynamic_shapes=dynamic,
            input_names=["stack", "focus_u"],
            output_names=["aif", "t"],
            verbose=False,
        )
    program.save(str(path))


def _export_torchscript(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path) -> None:
    try:
        scripted = torch.jit.script(model)
    except Exception:  # noqa: BLE001 - scripting is best effort; tracing is checked by the tests
        with torch.no_grad():
            scripted = torch.jit.trace(model, args, check_trace=False)
    torch.jit.save(scripted, str(path))
