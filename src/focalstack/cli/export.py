"""``focalstack export``: write a trained model as ONNX or TorchScript."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass
class ExportCommand:
    """Export a model (default: the shipped weights) to ONNX or TorchScript."""

    format: Literal["onnx", "torchscript"] = "onnx"
    """Output format."""
    out: Path | None = None
    """Output file (default: focalstack.onnx / focalstack.pt)."""
    checkpoint: Path | None = None
    """Weights to export (default: the shipped weights)."""
    num_slices: int = 5
    """Slices in the example input (ONNX accepts any number; TorchScript is traced at this one)."""
    size: tuple[int, int] = (256, 256)
    """Example image size (H, W) (ONNX accepts any; TorchScript is traced at this one)."""

    def run(self) -> None:
        from focalstack.inference.export import export_model
        from focalstack.inference.predict import load_predictor

        out = self.out or Path("focalstack.onnx" if self.format == "onnx" else "focalstack.pt")
        model = load_predictor(self.checkpoint)
        export_model(model, out, self.format, num_slices=self.num_slices, size=self.size)
        print(f"wrote {out}")
