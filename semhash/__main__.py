"""``python -m semhash``: the same as the ``semhash`` command."""

from semhash.cli import main

main()
