"""``python -m focalstack``: the same as the ``focalstack`` command."""

from focalstack.cli import main

main()
