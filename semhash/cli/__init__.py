"""The ``semhash`` command line: one module per command group, thin over the public API.

Exit codes: 0 success, 1 a user error (bad input, bad index, bad query; one line
on stderr), 2 a usage error (unknown option, missing argument).
"""

from semhash.cli import build, evaluate, inspect, search  # noqa: F401  (registers commands)
from semhash.cli.app import main

__all__ = ["main"]
