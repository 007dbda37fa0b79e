"""Command-line interface: ``focalstack <command> [flags]``, generated from dataclass configs by tyro.

Each command lives in its own module as a dataclass with a ``run()`` method; this registry maps the
command name to ``(module, class)`` so ``focalstack --help`` lists them all.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import tyro

COMMANDS: dict[str, tuple[str, str]] = {}


def _load(name: str) -> type:
    module, cls = COMMANDS[name]
    return getattr(importlib.import_module(module), cls)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``focalstack`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    commands = {name: _load(name) for name in COMMANDS}
    cfg = tyro.extras.subcommand_cli_from_dict(commands, args=args, prog="focalstack")
    cfg.run()


if __name__ == "__main__":
    main()
