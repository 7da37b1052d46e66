"""Resource map: country outlines, deposit and project layers, spatial queries, map and exports.

Submodules load on first use (Plotly only when a figure is made), so ``import critmin.geo`` is cheap.

- :mod:`~critmin.geo.outlines` — Natural Earth outlines (shipped) and the TopoJSON converter
- :mod:`~critmin.geo.layers` — ``deposit_layer``, ``facility_layer``, ``country_status``
- :mod:`~critmin.geo.queries` — ``within_bbox``, ``nearest``, ``haversine_km``
- :mod:`~critmin.geo.figure` — ``map_figure``, ``write_map_html``
- :mod:`~critmin.geo.export` — ``to_geojson``, ``to_geopackage``
- :mod:`~critmin.geo.workflow` — ``build_map`` (the ``critmin map`` command)
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "topojson_to_geojson": "outlines", "load_outlines": "outlines",
    "deposit_layer": "layers", "facility_layer": "layers", "country_status": "layers",
    "LAYER_COLUMNS": "layers",
    "within_bbox": "queries", "nearest": "queries", "haversine_km": "queries",
    "map_figure": "figure", "write_map_html": "figure",
    "to_geojson": "export", "to_geopackage": "export",
    "build_map": "workflow",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"critmin.geo.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'critmin.geo' has no attribute {name!r}")
