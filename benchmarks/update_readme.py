"""Splice the benchmark tables (docs/results/*.md) into README.md between marker comments.

A README section ``<!-- results:NAME -->`` ... ``<!-- /results:NAME -->`` is replaced by the content of
``docs/results/NAME.md``. Run after any benchmark: ``python -m benchmarks.update_readme``.
"""

from __future__ import annotations

import re
import sys

from benchmarks._common import REPO
from focalstack.utils.io import atomic_write

MARKER = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


def splice(readme: str) -> tuple[str, list[str]]:
    """Return the README with every marked section refreshed, and the names that were refreshed."""
    done: list[str] = []

    def repl(m: re.Match[str]) -> str:
        path = REPO / "docs" / "results" / f"{m['name']}.md"
        if not path.is_file():
            return m.group(0)
        done.append(m["name"])
        return m.group(1) + path.read_text().rstrip() + "\n" + m.group(4)

    return MARKER.sub(repl, readme), done


def main() -> int:
    readme = REPO / "README.md"
    text, done = splice(readme.read_text())
    atomic_write(readme, lambda p: p.write_text(text))
    print(f"README.md: refreshed {', '.join(done) or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
