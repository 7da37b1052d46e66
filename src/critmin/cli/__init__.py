"""Command line: thin Typer adapters over :mod:`critmin.workflows`."""
