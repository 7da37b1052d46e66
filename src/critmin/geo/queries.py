"""Spatial queries on layers: bounding box (antimeridian-aware) and nearest neighbours (haversine).

Vectorised with numpy; inputs are checked and a bad one raises :class:`~critmin.errors.ConfigError`
with the offending value. Coordinates are WGS84 degrees, distances kilometres on a sphere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from critmin.errors import ConfigError

#: Mean Earth radius R1 = (2a + b) / 3 of WGS84 (IUGG), km. A spherical model errs by < 0.5 %
#: against the ellipsoid, enough to rank and report plant distances.
EARTH_RADIUS_KM = 6371.0088

#: Pairs of points evaluated at once in :func:`nearest` (bounds memory to ~100 MB of float64).
_CHUNK_PAIRS = 4_000_000


def _check_number(value, name: str, lo: float, hi: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of degrees, got {value!r}") from None
    if not np.isfinite(v) or not lo <= v <= hi:
        raise ConfigError(f"{name} must be between {lo:g} and {hi:g} degrees, got {value!r}")
    return v


def coordinates(layer: pd.DataFrame, name: str = "layer") -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude arrays (degrees) of a layer, checked.

    Raises
    ------
    ConfigError
        If ``lat``/``lon`` columns are missing, not numeric, missing values or out of range.
    """
    if not isinstance(layer, pd.DataFrame):
        raise ConfigError(f"{name} must be a DataFrame with lat and lon columns, got {type(layer).__name__}")
    for col in ("lat", "lon"):
        if col not in layer.columns:
            raise ConfigError(f"{name} has no {col!r} column")
    try:
        lat = layer["lat"].to_numpy(dtype=float)
        lon = layer["lon"].to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: lat/lon must be numbers (degrees)") from None
    for arr, col, lim in ((lat, "lat", 90.0), (lon, "lon", 180.0)):
        bad = ~np.isfinite(arr) | (np.abs(arr) > lim)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            rid = layer["id"].iloc[i] if "id" in layer.columns else layer.index[i]
            raise ConfigError(f"{name}: row {rid!r} has {col} = {float(arr[i])!r}; expected a number in "
                              f"-{lim:g}..{lim:g} degrees")
    return lat, lon


def within_bbox(layer: pd.DataFrame, min_lon: float, min_lat: float, max_lon: float,
                max_lat: float) -> pd.DataFrame:
    """Rows of ``layer`` inside a longitude/latitude box (edges included).

    Parameters
    ----------
    layer : DataFrame
        With ``lat`` and ``lon`` columns (degrees).
    min_lon, min_lat, max_lon, max_lat : float
        The box in degrees (west, south, east, north). ``min_lon > max_lon`` means the box crosses
        the antimeridian (e.g. 170 → -170 covers 20 degrees around 180).

    Returns
    -------
    DataFrame
        The rows inside, index reset, attrs kept.

    Raises
    ------
    ConfigError
        Latitudes outside -90..90, longitudes outside -180..180, ``min_lat > max_lat`` or bad layer.
    """
    w = _check_number(min_lon, "min_lon", -180, 180)
    e = _check_number(max_lon, "max_lon", -180, 180)
    s = _check_number(min_lat, "min_lat", -90, 90)
    n = _check_number(max_lat, "max_lat", -90, 90)
    if s > n:
        raise ConfigError(f"min_lat ({s:g}) is north of max_lat ({n:g})")
    lat, lon = coordinates(layer)
    in_lon = (lon >= w) & (lon <= e) if w <= e else (lon >= w) | (lon <= e)
    out = layer.loc[in_lon & (lat >= s) & (lat <= n)].reset_index(drop=True)
    out.attrs = dict(layer.attrs)
    return out


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (numpy broadcasting)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(np.asarray(lon2) - np.asarray(lon1))
    h = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    # Rounding can push h a hair above 1 for antipodal points; arcsin would return NaN.
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def nearest(layer_from: pd.DataFrame, layer_to: pd.DataFrame, k: int = 1,
            same_commodity: bool = False) -> pd.DataFrame:
    """The ``k`` nearest points of ``layer_to`` for every point of ``layer_from`` (great circle).

    Typical use: for each deposit the nearest processing plant or project.

    Parameters
    ----------
    layer_from, layer_to : DataFrame
        Layers with ``lat``, ``lon`` (degrees) and preferably ``id``, ``name``, ``commodity``.
    k : int
        Neighbours per point (≥ 1); fewer when ``layer_to`` has fewer candidates.
    same_commodity : bool
        Only pair rows with the same ``commodity`` (both layers need the column).

    Returns
    -------
    DataFrame
        ``from_id, from_name, from_commodity, rank (1 = nearest), to_id, to_name, to_commodity,
        to_kind, distance_km``, sorted by ``from`` row then rank. Points without any candidate get
        no row; their count is ``attrs["unmatched"]``.

    Raises
    ------
    ConfigError
        If ``k`` is not a positive integer, a layer has bad coordinates, or ``same_commodity`` is
        asked without a ``commodity`` column.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    lat1, lon1 = coordinates(layer_from, "layer_from")
    lat2, lon2 = coordinates(layer_to, "layer_to")
    if same_commodity and not ("commodity" in layer_from and "commodity" in layer_to):
        raise ConfigError("same_commodity=True needs a 'commodity' column in both layers")

    def col(frame: pd.DataFrame, name: str) -> np.ndarray:
        if name == "id" and name not in frame:
            return frame.index.to_numpy()
        return frame[name].to_numpy(dtype=object) if name in frame else np.full(len(frame), None, object)

    n, m = len(lat1), len(lat2)
    kk = min(int(k), m)
    idx = np.zeros((n, kk), dtype=np.int64)
    dist = np.full((n, kk), np.inf)
    if kk:
        if same_commodity:
            # Integer codes so the same-commodity mask is one vectorised comparison.
            codes, _ = pd.factorize(pd.concat([layer_from["commodity"], layer_to["commodity"]],
                                                    ignore_index=True))
            c1, c2 = codes[:n], codes[n:]
        step = max(1, _CHUNK_PAIRS // max(m, 1))
        for start in range(0, n, step):
            sl = slice(start, min(start + step, n))
            d = haversine_km(lat1[sl, None], lon1[sl, None], lat2[None, :], lon2[None, :])
            if same_commodity:
                # Missing commodity (code -1) never matches, not even another missing one.
                d = np.where((c1[sl, None] == c2[None, :]) & (c1[sl, None] >= 0), d, np.inf)
            if kk < m:  # partial selection of the k smallest, then sort only those
                part = np.argpartition(d, kk - 1, axis=1)[:, :kk]
            else:
                part = np.tile(np.arange(m), (d.shape[0], 1))
            best = np.take_along_axis(d, part, axis=1)
            order = np.argsort(best, axis=1, kind="stable")
            idx[sl] = np.take_along_axis(part, order, axis=1)
            dist[sl] = np.take_along_axis(best, order, axis=1)

    found = np.isfinite(dist)
    rows, ranks = np.nonzero(found)
    to = idx[rows, ranks]
    out = pd.DataFrame({
        "from_id": col(layer_from, "id")[rows],
        "from_name": col(layer_from, "name")[rows],
        "from_commodity": col(layer_from, "commodity")[rows],
        "rank": ranks + 1,
        "to_id": col(layer_to, "id")[to],
        "to_name": col(layer_to, "name")[to],
        "to_commodity": col(layer_to, "commodity")[to],
        "to_kind": col(layer_to, "kind")[to],
        "distance_km": dist[rows, ranks],
    })
    out.attrs.update({"k": int(k), "same_commodity": bool(same_commodity),
                      "unmatched": int(n - found.any(axis=1).sum()) if kk else n,
                      "earth_radius_km": EARTH_RADIUS_KM})
    return out
