"""critmin: allied critical-minerals supply security.

The public Python API mirrors the command line::

    import critmin
    ds = critmin.methods(method="geopolrisk", importer="USA", year=2022)
    table = critmin.priorities(importer="USA+JPN")
"""

from __future__ import annotations

__all__ = ["assess", "load", "priorities"]
__version__ = "0.1.0"


def __getattr__(name: str):  # lazy: importing critmin does no work
    if name in __all__:
        from critmin import api

        return getattr(api, name)
    raise AttributeError(name)
