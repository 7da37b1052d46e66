"""Load the bundled reference dataset, or a user's own tables, and look up provenance.

Nothing here reads the raw public sources: the bundled dataset in ``data/`` is
built by :mod:`critmin.reference.build` and shipped with the package.
"""

from __future__ import annotations

import json
from functools import cached_property
from importlib import resources
from pathlib import Path

import pandas as pd

from critmin.errors import ConfigError, DataError
from critmin.reference import userdata
from critmin.reference.schema import CURATED_TABLES, TABLES


def bundled_dir() -> Path:
    """Folder of the shipped Parquet files and MANIFEST.json."""
    return Path(str(resources.files("critmin.reference").joinpath("data")))


ALL_TABLES = tuple(TABLES) + CURATED_TABLES + ("cross_checks",)


class Catalog:
    """Tables by name, from the bundled dataset with user overrides.

    Parameters
    ----------
    data : str or Path, optional
        A directory with any of ``production.csv``, ``trade.csv``, ``governance.csv``,
        ``prices.csv`` (see README, "Bring your own data"). They replace the bundled
        tables of the same name; the others come from the bundled dataset.
    bundled : Path, optional
        Alternative bundled dataset folder (tests).
    """

    def __init__(self, data: str | Path | None = None, bundled: Path | None = None) -> None:
        self.bundled = Path(bundled) if bundled else bundled_dir()
        self.user: dict[str, pd.DataFrame] = userdata.read_dir(data) if data else {}
        self.data_dir = str(data) if data else None
        self._cache: dict[str, pd.DataFrame] = {}

    @cached_property
    def manifest(self) -> dict:
        path = self.bundled / "MANIFEST.json"
        if not path.is_file():
            raise DataError("the bundled dataset is missing; run `critmin data build`", file=str(path.name))
        return json.loads(path.read_text("utf-8"))

    def table(self, name: str) -> pd.DataFrame:
        """The table ``name`` (a copy-free cached DataFrame; do not mutate)."""
        if name in self.user:
            return self.user[name]
        if name not in ALL_TABLES:
            raise ConfigError(f"unknown table {name!r}; known: {', '.join(ALL_TABLES)}")
        if name not in self._cache:
            path = self.bundled / f"{name}.parquet"
            if not path.is_file():
                raise DataError(f"bundled table {name!r} is missing; run `critmin data build`",
                                file=path.name)
            self._cache[name] = pd.read_parquet(path)
        return self._cache[name]

    def sources(self, ids) -> list[dict]:
        """Source records (publisher, licence, ...) for the given source ids; user files included."""
        try:
            known = {s["id"]: s for s in self.manifest.get("sources", [])}
        except DataError:  # user tables only, no bundled dataset at hand
            known = {}
        out = []
        for sid in sorted(set(ids)):
            if sid in known:
                out.append(known[sid])
            elif str(sid).startswith("user:"):
                out.append({"id": sid, "publisher": "user-supplied", "title": sid[5:],
                            "licence": "as supplied by the user", "url": self.data_dir or ""})
            else:
                out.append({"id": sid, "publisher": "unknown", "title": sid, "licence": "unknown", "url": ""})
        return out
