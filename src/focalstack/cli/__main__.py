"""``python -m focalstack.cli`` (and ``torchrun -m focalstack.cli train ...``)."""

from focalstack.cli import main

main()
