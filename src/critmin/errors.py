"""Errors that users can act on. The CLI turns every ``CritminError`` into a message and exit code 2."""

from __future__ import annotations


class CritminError(Exception):
    """Base class of user-facing errors."""


class DataError(CritminError):
    """Bad data: a file, row, column or value that cannot be used.

    Parameters
    ----------
    message : str
        What is wrong.
    file, row, column : optional
        Where. ``row`` is the 1-based line number in the file (header = line 1).
    """

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 column: str | None = None) -> None:
        self.file, self.row, self.column, self.reason = file, row, column, message
        where = []
        if file is not None:
            where.append(f"file {file}")
        if row is not None:
            where.append(f"line {row}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class MappingError(DataError):
    """A source label (country, commodity, series) that no mapping table covers."""


class UnitError(CritminError):
    """Quantities of different units, stages or bases were mixed."""


class ConfigError(CritminError):
    """A bad option or parameter (unknown importer, method, year, group ...)."""
