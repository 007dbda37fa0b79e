"""``focalstack eval``: score predictions against ground truth, or held-out slices of real stacks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Method = Literal["network", "dff", "fit", "nearest", "gt"]


@dataclass
class EvalCommand:
    """Score predictions against ground truth, or re-render held-out slices of focal stacks.

    Two modes (give exactly one):
      --pred PRED_DIR --gt GT_DIR   every depth and AIF metric per scene and mean (needs ground truth);
      --holdout-slice PATH          leave each interior slice out, predict from the rest, re-render it
                                    through the lens and compare with the real photo (PSNR / SSIM).
    Writes OUT/eval.{json,md} or OUT/holdout.{json,md}.
    """

    pred: Path | None = None
    """Prediction folder (depth.npy, aif.png as written by predict), or a folder of them per scene."""
    gt: Path | None = None
    """Ground-truth scene folder (depth.npy, aif.png, scene.json), or a folder of scene folders."""
    max_depth_m: float | None = None
    """Depth cap in metres for the valid mask (--pred/--gt mode)."""
    holdout_slice: Path | None = None
    """Scene folder or folder of scenes (with focus distances) for the held-out-slice evaluation."""
    method: tuple[Method, ...] = ("network", "dff", "nearest")
    """Held-out mode: methods to compare (gt = the scene's ground truth, for synthetic scenes)."""
    slices: tuple[int, ...] | None = None
    """Held-out mode: slice indices to hold out (default: every interior slice)."""
    checkpoint: Path | None = None
    """Network weights (default: the shipped weights)."""
    psf: Literal["gaussian", "disc"] = "gaussian"
    """PSF used to re-render held-out slices."""
    kernel_size: int | None = None
    """Renderer window in pixels (default: sized to the largest blur)."""
    max_size: int | None = None
    """Held-out mode: downscale so the longer side is at most this (pixel pitch scales accordingly)."""
    blur_scale: Literal["auto", "estimate", "camera"] = "auto"
    """auto: estimate one blur factor from the remaining slices only when the pixel pitch / f-number is
    unknown; estimate: always; camera: never."""
    align: bool = False
    """Held-out mode: align the slices first (hand-held stacks, focus breathing); crops to the common area."""
    fit_iterations: int | None = None
    """Held-out mode, method fit: Adam steps at full size (``FitConfig.iterations``; default: its own)."""
    device: str = "cpu"
    """Torch device for network / fit."""
    out: Path = Path("eval")
    """Output folder."""

    def run(self) -> None:
        from focalstack.eval.evaluate import evaluate_predictions, metrics_markdown, write_report

        if (self.holdout_slice is not None) == (self.pred is not None or self.gt is not None):
            raise SystemExit("give either --pred and --gt, or --holdout-slice (not both)")
        try:
            if self.holdout_slice is not None:
                from focalstack.eval.holdout import HoldoutConfig, holdout_eval, holdout_markdown

                cfg = HoldoutConfig(
                    methods=self.method,
                    slices=self.slices,
                    psf=self.psf,
                    kernel_size=self.kernel_size,
                    max_size=self.max_size,
                    blur_scale=self.blur_scale,
                    checkpoint=None if self.checkpoint is None else str(self.checkpoint),
                    device=self.device,
                    align=self.align,
                    fit_kwargs={} if self.fit_iterations is None else {"iterations": self.fit_iterations},
                )
                report = holdout_eval(self.holdout_slice, cfg)
                markdown, stem = holdout_markdown(report), "holdout"
            else:
                if self.pred is None or self.gt is None:
                    raise SystemExit("--pred and --gt go together")
                report = evaluate_predictions(self.pred, self.gt, max_depth_m=self.max_depth_m)
                markdown, stem = metrics_markdown(report), "eval"
        except (ValueError, FileNotFoundError) as e:
            raise SystemExit(f"focalstack eval: {e}") from None
        json_path, md_path = write_report(report, markdown, self.out, stem)
        print(markdown)
        print(f"wrote {json_path} and {md_path}")
