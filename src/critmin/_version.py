"""The version of critmin (one place; the package, the brief and the CLI read it here)."""

__version__ = "0.1.0"
