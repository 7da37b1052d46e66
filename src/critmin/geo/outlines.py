"""Country outlines: TopoJSON → GeoJSON converter and the shipped Natural Earth 1:110m outlines.

The shipped file ``data/countries-110m.geojson`` was made from ``countries-110m.json`` of the npm
package ``world-atlas`` 2.0.2 (Natural Earth, public domain) with :func:`convert_world_atlas`;
``data/NOTICE.md`` records the source, licence, checksum and command. Nothing here touches the
network: the converter takes a decoded TopoJSON ``dict`` and the loader reads package data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources

from critmin.errors import DataError

#: Decimal places kept in the shipped outlines: 1e-3 degree is about 110 m on the ground,
#: far below the ~1 km detail of the 1:110m source, and it halves the file size.
OUTLINE_DECIMALS = 3

#: Natural Earth 1:110m features without an ISO 3166-1 numeric id in world-atlas.
#: Kosovo has the user-assigned code XKX that critmin accepts; Northern Cyprus and Somaliland
#: have no ISO code at all and keep ``iso3 = None`` (drawn as "other" by name).
NAME_TO_ISO3 = {"Kosovo": "XKX"}

OUTLINES_FILE = "countries-110m.geojson"


def _decode_arcs(topo: dict) -> list[list[list[float]]]:
    """Absolute lon/lat positions of every arc (delta-decoded and de-quantised when quantised)."""
    transform = topo.get("transform")
    arcs = topo.get("arcs")
    if not isinstance(arcs, list):
        raise DataError("TopoJSON has no 'arcs' list")
    out: list[list[list[float]]] = []
    if transform is None:
        # Unquantised topology: positions are absolute already.
        return [[[float(p[0]), float(p[1])] for p in arc] for arc in arcs]
    (kx, ky), (dx, dy) = transform["scale"], transform["translate"]
    for arc in arcs:
        x = y = 0
        pts = []
        for p in arc:
            # Quantised arcs are delta-encoded: each position is the offset from the previous one.
            x += p[0]
            y += p[1]
            pts.append([x * kx + dx, y * ky + dy])
        out.append(pts)
    return out


def _ring(indices: Iterable[int], arcs: list[list[list[float]]]) -> list[list[float]]:
    """Stitch arcs into one ring; a negative index ``~i`` means arc ``i`` reversed."""
    ring: list[list[float]] = []
    for idx in indices:
        idx = int(idx)
        try:
            pts = arcs[idx] if idx >= 0 else arcs[~idx][::-1]
        except IndexError:
            raise DataError(f"TopoJSON geometry refers to arc {idx}, but there are {len(arcs)} arcs") from None
        # Consecutive arcs share their junction point; keep it once.
        ring.extend(pts if not ring else pts[1:])
    return ring


def _clean_ring(ring: list[list[float]], decimals: int | None) -> list[list[float]] | None:
    """Round, drop repeated positions, close; ``None`` for a ring that collapsed (< 4 positions)."""
    if decimals is not None:
        ring = [[round(x, decimals), round(y, decimals)] for x, y in ring]
    out: list[list[float]] = []
    for p in ring:
        if not out or p != out[-1]:
            out.append(p)
    if out and out[0] != out[-1]:
        out.append(list(out[0]))
    return out if len(out) >= 4 else None


def _polygon(rings_arcs, arcs, decimals) -> list[list[list[float]]] | None:
    rings = [_clean_ring(_ring(r, arcs), decimals) for r in rings_arcs]
    if not rings or rings[0] is None:  # the exterior collapsed: the whole polygon is below resolution
        return None
    return [r for r in rings if r is not None]


def topojson_to_geojson(topo: dict, object_name: str | None = None, *,
                        decimals: int | None = None) -> dict:
    """Convert one object of a TopoJSON topology to a GeoJSON FeatureCollection.

    Handles quantised (``transform``) and unquantised topologies, ``Polygon`` and
    ``MultiPolygon`` geometries (other types are skipped: the outlines need none), reversed
    arcs (``~i``) and repeated junction points. Ring orientation is kept as in the topology
    (world-atlas: exterior rings clockwise, the d3-geo / Plotly convention).

    Parameters
    ----------
    topo : dict
        A decoded TopoJSON ``Topology``.
    object_name : str, optional
        Which entry of ``topo["objects"]``; default the only one, or ``"countries"``.
    decimals : int, optional
        Round coordinates (degrees) to this many decimals and drop positions that become
        repeated; rings that collapse are dropped. Default: full precision.

    Returns
    -------
    dict
        GeoJSON ``FeatureCollection``; each feature keeps the geometry's ``id`` and ``properties``.
        Coordinates are WGS84 longitude, latitude in degrees.

    Raises
    ------
    DataError
        If ``topo`` is not a topology or the object is missing.
    """
    if not isinstance(topo, dict) or topo.get("type") != "Topology":
        raise DataError("not a TopoJSON Topology (expected type 'Topology')")
    objects = topo.get("objects") or {}
    if object_name is None:
        object_name = next(iter(objects)) if len(objects) == 1 else "countries"
    if object_name not in objects:
        raise DataError(f"TopoJSON has no object {object_name!r}; objects: {', '.join(objects)}")
    obj = objects[object_name]
    geoms = obj["geometries"] if obj.get("type") == "GeometryCollection" else [obj]
    arcs = _decode_arcs(topo)
    features = []
    for g in geoms:
        if g.get("type") == "Polygon":
            poly = _polygon(g["arcs"], arcs, decimals)
            geometry = {"type": "Polygon", "coordinates": poly} if poly else None
        elif g.get("type") == "MultiPolygon":
            polys = [p for p in (_polygon(rs, arcs, decimals) for rs in g["arcs"]) if p]
            geometry = {"type": "MultiPolygon", "coordinates": polys} if polys else None
        else:
            continue
        if geometry is None:
            continue
        feature = {"type": "Feature", "properties": dict(g.get("properties") or {}), "geometry": geometry}
        if "id" in g:
            feature["id"] = g["id"]
        features.append(feature)
    return {"type": "FeatureCollection", "features": features}


def convert_world_atlas(topo: dict, decimals: int = OUTLINE_DECIMALS) -> dict:
    """world-atlas ``countries-110m.json`` → the shipped outlines (``iso3`` and ``name`` properties).

    ``iso3`` comes from the ISO 3166-1 numeric feature id via :mod:`pycountry`
    (``NAME_TO_ISO3`` for features without one; ``None`` when no code exists).
    """
    import pycountry

    fc = topojson_to_geojson(topo, "countries", decimals=decimals)
    features = []
    for f in fc["features"]:
        name = f["properties"].get("name")
        num = f.get("id")
        country = pycountry.countries.get(numeric=str(num)) if num is not None else None
        iso3 = country.alpha_3 if country else NAME_TO_ISO3.get(name)
        features.append({"type": "Feature", "properties": {"iso3": iso3, "name": name},
                         "geometry": f["geometry"]})
    return {"type": "FeatureCollection", "features": features}


def dumps_compact(geojson: dict) -> str:
    """Compact, deterministic JSON text (no spaces, one trailing newline)."""
    return json.dumps(geojson, separators=(",", ":"), ensure_ascii=False) + "\n"


def load_outlines() -> dict:
    """The shipped Natural Earth 1:110m country outlines (GeoJSON FeatureCollection, WGS84 degrees).

    Properties per feature: ``iso3`` (ISO 3166-1 alpha-3, ``XKX`` for Kosovo, ``None`` for
    Northern Cyprus and Somaliland) and ``name`` (Natural Earth short name).
    """
    path = resources.files("critmin.geo").joinpath("data", OUTLINES_FILE)
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise DataError("the shipped country outlines are missing", file=OUTLINES_FILE) from None


def main(argv: list[str] | None = None) -> None:
    """``python -m critmin.geo.outlines countries-110m.json OUT.geojson`` (regenerate the shipped file)."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("topojson", type=Path, help="world-atlas countries-110m.json")
    parser.add_argument("out", type=Path, help="GeoJSON to write")
    args = parser.parse_args(argv)
    topo = json.loads(args.topojson.read_text("utf-8"))
    args.out.write_text(dumps_compact(convert_world_atlas(topo)), encoding="utf-8")


if __name__ == "__main__":
    main()
