"""Turn a training run into the shipped weights ``src/focalstack/weights/default.pt``.

Keeps only what inference needs (model weights, the resolved config incl. normalisation) and records
how the weights were made: the run's command line, steps, wall time and device, from the run folder.

    .venv/bin/python scripts/ship_weights.py runs/shipped-v1 [--checkpoint best.pt|last.pt] [--note TEXT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from focalstack.models import build_model
from focalstack.train.checkpoint import checkpoint_config, load_checkpoint, save_checkpoint

TARGET = Path(__file__).resolve().parents[1] / "src" / "focalstack" / "weights" / "default.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--checkpoint", default="last.pt")
    parser.add_argument("--command", default="", help="the training command line, recorded verbatim")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    ckpt = load_checkpoint(args.run / args.checkpoint)
    cfg = checkpoint_config(ckpt, strict=False)
    model = build_model(cfg.model)
    model.load_state_dict(ckpt["model"])
    training = {
        "run": str(args.run),
        "checkpoint": args.checkpoint,
        "step": ckpt.get("step"),
        "command": args.command,
        "note": args.note,
        # config.yaml is written when training starts, the checkpoint when it ends
        "wall_time_s": round(
            (args.run / args.checkpoint).stat().st_mtime - (args.run / "config.yaml").stat().st_mtime
        ),
    }
    save_checkpoint(TARGET, model=model, config=cfg, step=ckpt.get("step", 0), extra={"training": training})
    TARGET.with_suffix(".json").write_text(json.dumps(training | {"config": ckpt["config"]}, indent=2) + "\n")
    size = TARGET.stat().st_size / 2**20
    print(f"wrote {TARGET} ({size:.2f} MB) and {TARGET.with_suffix('.json').name}")


if __name__ == "__main__":
    main()
