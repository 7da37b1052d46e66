"""Layer exports: GeoJSON and OGC GeoPackage (written with the standard-library ``sqlite3``, no GDAL).

The GeoPackage follows OGC 12-128r18 (GeoPackage 1.3): ``application_id`` 'GPKG', ``user_version``
10300, the three required metadata tables and one point feature table per layer, geometries as
GeoPackage binary (header + little-endian WKB) in EPSG:4326 (WGS84 longitude, latitude in degrees).
"""

from __future__ import annotations

import math
import re
import sqlite3
import struct
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from critmin.errors import ConfigError
from critmin.geo.queries import coordinates

#: ``PRAGMA application_id`` of a GeoPackage: ASCII 'GPKG'.
GPKG_APPLICATION_ID = 0x47504B47
#: ``PRAGMA user_version`` of GeoPackage 1.3.0.
GPKG_USER_VERSION = 10300
WGS84_SRS_ID = 4326
WGS84_WKT = ('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
             'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,'
             'AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],'
             'AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]')

#: Columns carried by the geometry, not repeated as attributes.
_GEOMETRY_COLUMNS = ("lat", "lon")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _plain(value):
    """A JSON/SQLite-ready scalar: NaN/NA → None, numpy scalars → Python."""
    if value is None:
        return None
    if not isinstance(value, str) and pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _attribute_columns(layer: pd.DataFrame) -> list[str]:
    return [c for c in layer.columns if c not in _GEOMETRY_COLUMNS]


def to_geojson(layer: pd.DataFrame) -> dict:
    """A layer as a GeoJSON FeatureCollection of Points (RFC 7946, WGS84 longitude, latitude).

    Parameters
    ----------
    layer : DataFrame
        With ``lat`` and ``lon`` in degrees; every other column becomes a feature property
        (missing values → ``null``).

    Returns
    -------
    dict
        ``{"type": "FeatureCollection", "features": [...]}``, one Point feature per row.

    Raises
    ------
    ConfigError
        If coordinates are missing or out of range.
    """
    lat, lon = coordinates(layer)
    cols = _attribute_columns(layer)
    records = layer[cols].astype(object).to_numpy() if cols else np.empty((len(layer), 0), dtype=object)
    features = []
    for x, y, row in zip(lon.tolist(), lat.tolist(), records, strict=True):
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
                         "properties": {c: _plain(v) for c, v in zip(cols, row, strict=True)}})
    return {"type": "FeatureCollection", "features": features}


def gpkg_point(lon: float, lat: float, srs_id: int = WGS84_SRS_ID) -> bytes:
    """GeoPackage binary of a 2-D point: header 'GP', version 0, flags, srs_id, then WKB.

    Flags ``0b00000001``: little-endian header, no envelope (a point is its own envelope),
    not empty, standard (not extended) geometry.
    """
    header = struct.pack("<2sBBi", b"GP", 0, 0b00000001, srs_id)
    wkb = struct.pack("<BIdd", 1, 1, float(lon), float(lat))  # byte order 1 = little endian; type 1 = Point
    return header + wkb


def read_gpkg_point(blob: bytes) -> tuple[float, float, int]:
    """Decode :func:`gpkg_point` output (any envelope size) → ``(lon, lat, srs_id)``."""
    magic, version, flags = blob[:2], blob[2], blob[3]
    if magic != b"GP" or version != 0:
        raise ValueError("not a GeoPackage binary geometry")
    endian = "<" if flags & 1 else ">"
    (srs_id,) = struct.unpack(endian + "i", blob[4:8])
    envelope = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}[(flags >> 1) & 0b111]
    wkb = blob[8 + envelope:]
    wkb_endian = "<" if wkb[0] == 1 else ">"
    gtype, x, y = struct.unpack(wkb_endian + "Idd", wkb[1:21])
    if gtype != 1:
        raise ValueError(f"WKB geometry type {gtype} is not a Point")
    return x, y, srs_id


def _sql_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(series):
        return "INTEGER"
    if pd.api.types.is_float_dtype(series):
        return "DOUBLE"
    return "TEXT"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _create_metadata(db: sqlite3.Connection) -> None:
    db.execute(f"PRAGMA application_id = {GPKG_APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {GPKG_USER_VERSION}")
    db.execute("""CREATE TABLE gpkg_spatial_ref_sys (
        srs_name TEXT NOT NULL, srs_id INTEGER NOT NULL PRIMARY KEY, organization TEXT NOT NULL,
        organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT)""")
    db.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", [
        ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian coordinate reference system"),
        ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic coordinate reference system"),
        ("WGS 84 geodetic", WGS84_SRS_ID, "EPSG", 4326, WGS84_WKT,
         "longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid"),
    ])
    db.execute("""CREATE TABLE gpkg_contents (
        table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
        description TEXT DEFAULT '',
        last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
        CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id))""")
    db.execute("""CREATE TABLE gpkg_geometry_columns (
        table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
        srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
        CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
        CONSTRAINT uk_gc_table_name UNIQUE (table_name),
        CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
        CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id))""")


def _check_layers(layers: Mapping[str, pd.DataFrame]) -> None:
    if not layers:
        raise ConfigError("no layers to write to the GeoPackage")
    for name, layer in layers.items():
        if not isinstance(name, str) or not _NAME.match(name) or name.lower().startswith(("gpkg_", "rtree_",
                                                                                         "sqlite_")):
            raise ConfigError(f"bad GeoPackage table name {name!r}: use letters, digits and '_', "
                              "starting with a letter, not gpkg_/rtree_/sqlite_")
        coordinates(layer, name)
        clash = [c for c in layer.columns if str(c).lower() in ("fid", "geom")]
        if clash:
            raise ConfigError(f"layer {name!r}: column {clash[0]!r} is reserved (feature id / geometry)")


def geopackage_bytes(layers: Mapping[str, pd.DataFrame], timestamp: str | None = None) -> bytes:
    """The GeoPackage file content for ``layers`` (see :func:`to_geopackage`)."""
    _check_layers(layers)
    stamp = timestamp or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    with tempfile.TemporaryDirectory(prefix="critmin-gpkg-") as tmp:
        path = Path(tmp) / "layers.gpkg"
        db = sqlite3.connect(path)
        try:
            with db:
                _create_metadata(db)
                for name, layer in layers.items():
                    _write_layer(db, name, layer, stamp)
        finally:
            db.close()
        return path.read_bytes()


def _write_layer(db: sqlite3.Connection, name: str, layer: pd.DataFrame, stamp: str) -> None:
    lat, lon = coordinates(layer, name)
    cols = _attribute_columns(layer)
    col_sql = "".join(f", {_quote(str(c))} {_sql_type(layer[c])}" for c in cols)
    db.execute(f"CREATE TABLE {_quote(name)} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, "
               f"geom POINT{col_sql})")
    bounds = ([float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())] if len(layer)
              else [None] * 4)
    db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, last_change, "
               "min_x, min_y, max_x, max_y, srs_id) VALUES (?, 'features', ?, ?, ?, ?, ?, ?, ?, ?)",
               (name, name, str(layer.attrs.get("description", f"critmin {name} layer")), stamp, *bounds,
                WGS84_SRS_ID))
    db.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'POINT', ?, 0, 0)", (name, WGS84_SRS_ID))
    values = layer[cols].astype(object).to_numpy() if cols else np.empty((len(layer), 0), dtype=object)
    placeholders = ", ".join(["?"] * (len(cols) + 1))
    names = ", ".join(["geom"] + [_quote(str(c)) for c in cols])
    rows = ([gpkg_point(x, y)] + [_sql_value(v) for v in row]
            for x, y, row in zip(lon.tolist(), lat.tolist(), values, strict=True))
    db.executemany(f"INSERT INTO {_quote(name)} ({names}) VALUES ({placeholders})", rows)


def _sql_value(value):
    v = _plain(value)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is not None and not isinstance(v, (str, int, float, bytes)):
        return str(v)
    return v


def to_geopackage(layers: Mapping[str, pd.DataFrame], path: str | Path, timestamp: str | None = None) -> Path:
    """Write layers to an OGC GeoPackage (one point feature table per layer), atomically.

    Parameters
    ----------
    layers : mapping of str to DataFrame
        Table name → layer with ``lat``/``lon`` (degrees); other columns become attributes
        (TEXT, INTEGER, DOUBLE or BOOLEAN). Names: letters, digits, ``_``.
    path : str or Path
        The ``.gpkg`` file; its folder must exist. Written via a temporary file and rename.
    timestamp : str, optional
        ``gpkg_contents.last_change`` (ISO 8601 UTC, e.g. ``2026-01-01T00:00:00.000Z``);
        default now. Fix it for byte-reproducible output.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ConfigError
        Bad table name, reserved column (``fid``, ``geom``), bad coordinates, missing folder.
    """
    from critmin.files import write_atomic

    return write_atomic(geopackage_bytes(layers, timestamp), path)
