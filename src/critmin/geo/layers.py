"""Map layers: deposits and projects as tidy point tables, and the allied status of countries.

Pure functions over DataFrames (no file or network access). A layer has one row per point and
commodity, with the columns :data:`LAYER_COLUMNS`; coordinates are WGS84 degrees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from critmin.constants import STAGES
from critmin.errors import ConfigError, DataError

#: Columns of every layer, in order. ``detail`` is the deposit type or the project's product.
LAYER_COLUMNS = ("id", "name", "country", "lat", "lon", "commodity", "stage", "kind", "status",
                 "source", "detail")

#: Values of the ``status`` column of :func:`country_status`.
COUNTRY_STATUSES = ("USA", "JPN", "ally", "other")


def normalise_list(values: str | Iterable[str] | None, what: str) -> list[str] | None:
    """``"a, b"`` or ``["a", "b"]`` → ``["a", "b"]`` (lower case, de-duplicated); ``None`` stays ``None``.

    Raises
    ------
    ConfigError
        If the list is given but empty.
    """
    if values is None:
        return None
    items = values.split(",") if isinstance(values, str) else list(values)
    out: list[str] = []
    for item in items:
        v = str(item).strip().lower()
        if v and v not in out:
            out.append(v)
    if not out:
        raise ConfigError(f"empty {what} list")
    return out


def _require(frame: pd.DataFrame, columns: Iterable[str], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"table {table!r} lacks column(s) {', '.join(missing)}")


def _split_tokens(series: pd.Series) -> pd.Series:
    """';'-joined ids → lists of stripped, non-empty ids (an empty list where there are none)."""
    return series.fillna("").astype(str).map(lambda s: [t.strip() for t in s.split(";") if t.strip()])


def _with_coordinates(frame: pd.DataFrame, id_col: str, table: str) -> tuple[pd.DataFrame, int]:
    """Rows with finite coordinates, and how many were dropped; out-of-range coordinates are an error."""
    lat = pd.to_numeric(frame["lat"], errors="coerce").to_numpy(dtype=float)
    lon = pd.to_numeric(frame["lon"], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(lat) & np.isfinite(lon)
    bad = ok & ((np.abs(lat) > 90) | (np.abs(lon) > 180))
    if bad.any():
        row = frame.loc[bad].iloc[0]
        raise DataError(f"{row[id_col]}: latitude {row['lat']} / longitude {row['lon']} out of range "
                        "(lat -90..90, lon -180..180 degrees)", column="lat/lon", file=table)
    kept = frame.loc[ok].copy()
    kept["lat"], kept["lon"] = lat[ok], lon[ok]
    return kept, int((~ok).sum())


def _finish(frame: pd.DataFrame, commodities: list[str] | None, attrs: dict) -> pd.DataFrame:
    exploded = frame.explode("commodity", ignore_index=True)
    # A record whose commodity list is empty explodes to NaN: it stays on the map as "unmapped".
    if commodities is not None:
        exploded = exploded[exploded["commodity"].isin(commodities)]
    out = exploded.loc[:, list(LAYER_COLUMNS)].sort_values(["id", "commodity"], na_position="last")
    out = out.reset_index(drop=True)
    for col in ("lat", "lon"):
        out[col] = out[col].astype(float)
    out.attrs.update(attrs)
    out.attrs["rows"] = len(out)
    out.attrs["records"] = int(out["id"].nunique())
    return out


def deposit_layer(deposits: pd.DataFrame, commodities: str | Iterable[str] | None = None) -> pd.DataFrame:
    """Deposits as a layer, one row per deposit and commodity.

    Parameters
    ----------
    deposits : DataFrame
        The ``deposits`` table (``deposit_id, name, country, lat, lon, commodities`` ';'-joined,
        ``deposit_type, dataset, source``).
    commodities : str or list of str, optional
        Keep only these commodity ids (``"lithium,graphite"`` or a list). Default: all, including
        deposits with no mapped commodity (``commodity`` missing).

    Returns
    -------
    DataFrame
        Columns :data:`LAYER_COLUMNS`; ``kind = "deposit"``, ``stage`` and ``status`` missing (the
        USGS datasets have neither), ``source`` the dataset's source id, ``detail`` the deposit
        type; lat/lon in degrees. ``attrs``: ``dropped_no_coords`` (deposits without coordinates, not shown),
        ``records`` (deposits shown) and ``rows``.
    """
    _require(deposits, ("deposit_id", "name", "country", "lat", "lon", "commodities", "source"), "deposits")
    wanted = normalise_list(commodities, "commodity")
    kept, dropped = _with_coordinates(deposits, "deposit_id", "deposits")
    frame = pd.DataFrame({
        "id": kept["deposit_id"].astype(str).to_numpy(),
        "name": kept["name"].to_numpy(),
        "country": kept["country"].to_numpy(),
        "lat": kept["lat"].to_numpy(),
        "lon": kept["lon"].to_numpy(),
        "commodity": _split_tokens(kept["commodities"]).to_numpy(),
        "stage": pd.NA,
        "kind": "deposit",
        "status": pd.NA,  # the USGS deposit datasets carry no development status
        "source": kept["source"].to_numpy(),
        "detail": kept["deposit_type"].to_numpy() if "deposit_type" in kept else pd.NA,
    })
    return _finish(frame, wanted, {"kind": "deposit", "dropped_no_coords": dropped})


def facility_layer(projects: pd.DataFrame, commodities: str | Iterable[str] | None = None,
                   stages: str | Iterable[str] | None = None) -> pd.DataFrame:
    """Curated projects (mines, refineries, plants) as a layer, one row per project and commodity.

    Parameters
    ----------
    projects : DataFrame
        The curated ``projects`` table (``project_id, name, country, lat, lon, commodity``
        ';'-joined, ``stage_id`` ';'-joined, ``status, product, source``).
    commodities : str or list of str, optional
        Keep only these commodity ids.
    stages : str or list of str, optional
        Keep projects active in at least one of these stages (``mine, refine, metal, component``).

    Returns
    -------
    DataFrame
        Columns :data:`LAYER_COLUMNS`; ``kind = "project"``, ``stage`` the ';'-joined stage ids,
        ``detail`` the product. ``attrs``: ``dropped_no_coords`` (projects without coordinates),
        ``records``, ``rows``.

    Raises
    ------
    ConfigError
        If a stage is not one of ``mine, refine, metal, component``.
    """
    _require(projects, ("project_id", "name", "country", "lat", "lon", "commodity", "source"), "projects")
    wanted = normalise_list(commodities, "commodity")
    wanted_stages = normalise_list(stages, "stage")
    if wanted_stages is not None:
        unknown = [s for s in wanted_stages if s not in STAGES]
        if unknown:
            raise ConfigError(f"unknown stage {unknown[0]!r}; expected one of {', '.join(STAGES)}")
    kept, dropped = _with_coordinates(projects, "project_id", "projects")
    stage_ids = kept["stage_id"] if "stage_id" in kept else pd.Series(pd.NA, index=kept.index)
    if wanted_stages is not None:
        has_stage = _split_tokens(stage_ids).map(lambda toks: bool(set(toks) & set(wanted_stages)))
        kept, stage_ids = kept.loc[has_stage.to_numpy()], stage_ids.loc[has_stage.to_numpy()]
    frame = pd.DataFrame({
        "id": kept["project_id"].astype(str).to_numpy(),
        "name": kept["name"].to_numpy(),
        "country": kept["country"].to_numpy(),
        "lat": kept["lat"].to_numpy(),
        "lon": kept["lon"].to_numpy(),
        "commodity": _split_tokens(kept["commodity"]).to_numpy(),
        "stage": stage_ids.to_numpy(),
        "kind": "project",
        "status": kept["status"].to_numpy() if "status" in kept else pd.NA,
        "source": kept["source"].to_numpy(),
        "detail": kept["product"].to_numpy() if "product" in kept else pd.NA,
    })
    return _finish(frame, wanted, {"kind": "project", "dropped_no_coords": dropped})


def country_status(groups: Mapping[str, dict], allies: str = "msp",
                   countries: Iterable[str] | None = None) -> pd.DataFrame:
    """Allied status of every country, for highlighting on the map.

    Parameters
    ----------
    groups : mapping
        Named groups as returned by :func:`critmin.importers.groups`.
    allies : str
        The group whose members count as allies (default ``msp``, the Minerals Security Partnership).
    countries : iterable of str, optional
        ISO3 codes to classify; default every ISO 3166-1 country plus Kosovo (``XKX``).

    Returns
    -------
    DataFrame
        ``iso3, status`` with status ``USA``, ``JPN``, ``ally`` (member of ``allies``) or ``other``,
        sorted by ``iso3``. ``attrs["allies"]`` names the group and ``attrs["source"]`` its source.

    Raises
    ------
    ConfigError
        If ``allies`` is not a group in ``groups``.
    """
    key = str(allies).lower()
    if key not in groups:
        raise ConfigError(f"unknown allies group {allies!r}; known: {', '.join(sorted(groups))}")
    members = set(groups[key].get("members") or [])
    if countries is None:
        import pycountry

        countries = [c.alpha_3 for c in pycountry.countries] + ["XKX"]
    codes = sorted(set(countries))
    status = ["USA" if c == "USA" else "JPN" if c == "JPN" else "ally" if c in members else "other"
              for c in codes]
    out = pd.DataFrame({"iso3": codes, "status": status})
    out.attrs.update({"allies": key, "source": groups[key].get("source", "")})
    return out
