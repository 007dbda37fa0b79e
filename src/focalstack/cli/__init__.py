"""Command-line interface: ``focalstack <command> [flags]``, generated from dataclass configs by tyro.

Each command lives in its own module as a dataclass with a ``run()`` method; ``COMMANDS`` maps the
command name to ``(module, class)``. Only the requested command's module is imported, so startup stays
fast and one command's heavy dependencies never slow another.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import tyro

COMMANDS: dict[str, tuple[str, str, str]] = {
    # name: (module, class, one-line help)
    "synth": ("focalstack.cli.synth", "SynthCommand", "render focal stacks from RGB-D data or procedurally"),
    "convert": ("focalstack.cli.convert", "ConvertCommand", "convert public datasets to scene folders"),
    "train": ("focalstack.cli.train", "TrainCommand", "train a model self-supervised on focal stacks"),
    "predict": ("focalstack.cli.predict", "PredictCommand", "predict depth and all-in-focus images"),
    "fit": ("focalstack.cli.fit", "FitCommand", "per-scene optimisation of depth and AIF (no network)"),
    "eval": ("focalstack.cli.eval", "EvalCommand", "score predictions / held-out slices"),
    "export": ("focalstack.cli.export", "ExportCommand", "export a model to ONNX or TorchScript"),
    "demo": ("focalstack.cli.demo", "DemoCommand", "run predict on the bundled scene and score it"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: focalstack COMMAND [--help] [flags]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``focalstack`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        raise SystemExit(f"focalstack: unknown command {name!r}\n\n{_usage()}")
    module, cls, help_ = COMMANDS[name]
    command_type = getattr(importlib.import_module(module), cls)
    cfg = tyro.cli(command_type, args=rest, prog=f"focalstack {name}", description=help_)
    cfg.run()


if __name__ == "__main__":
    main()
