"""``focalstack demo``: predict on the bundled scene, write outputs, score them against its ground truth."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

DEMO_SCENE = "demo_scene"


def demo_scene_path() -> Path:
    """Folder of the focal stack bundled with the package (a scene folder with GT depth and AIF)."""
    return Path(str(resources.files("focalstack") / "assets" / DEMO_SCENE))


@dataclass
class DemoCommand:
    """Run the shipped model and the classical baseline on the bundled scene and print the metrics."""

    out: Path = Path("demo_out")
    """Output folder."""
    device: str = "cpu"
    """Torch device."""

    def run(self) -> None:
        from focalstack.data.stack import FocalStack
        from focalstack.eval.metrics import aif_metrics, depth_metrics
        from focalstack.inference.baselines import dff_predict
        from focalstack.inference.outputs import write_prediction
        from focalstack.inference.predict import predict

        stack = FocalStack.load(demo_scene_path())
        print(
            f"scene: {stack.name} — {stack.num_slices} slices of {stack.size[1]}x{stack.size[0]} px, "
            f"focus {[round(float(f), 3) for f in stack.focus_m]} m"
        )
        rows = {}
        for method in ("network", "dff"):
            start = time.perf_counter()
            depth, aif = predict(stack, device=self.device) if method == "network" else dff_predict(stack)
            seconds = time.perf_counter() - start
            out_dir = self.out / method
            write_prediction(out_dir, stack, depth, aif, extra_meta={"method": method, "seconds": seconds})
            scores = depth_metrics(depth, stack.depth_m, focus_m=stack.focus_m)
            scores.update(aif_metrics(aif, stack.aif))
            rows[method] = {"seconds": seconds, **scores}
            print(f"wrote {out_dir}/ (depth.npy, depth.png, depth_color.png, aif.png, recon.png)")
        self.print_table(rows)
        (self.out / "metrics.json").write_text(json.dumps(rows, indent=2) + "\n")
        print(f"metrics: {self.out / 'metrics.json'}")

    @staticmethod
    def print_table(rows: dict[str, dict[str, float]]) -> None:
        keys = ["delta1", "absrel", "rmse", "error_slices", "aif_psnr", "aif_ssim", "seconds"]
        print("\n| method | " + " | ".join(keys) + " |")
        print("|---" * (len(keys) + 1) + "|")
        for name, r in rows.items():
            print(f"| {name} | " + " | ".join(f"{r.get(k, float('nan')):.3f}" for k in keys) + " |")
