"""The ``evalkit`` command line."""

from evalkit.cli.main import main

__all__ = ["main"]
