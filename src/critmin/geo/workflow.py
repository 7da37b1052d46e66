"""The ``critmin map`` workflow: catalog → layers → figure and exports, all rendered before any write."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from critmin.errors import ConfigError
from critmin.geo.layers import country_status, deposit_layer, facility_layer, normalise_list


@dataclass
class MapResult:
    """What :func:`build_map` made: the layers, the figure and the files written."""

    deposits: pd.DataFrame
    projects: pd.DataFrame
    figure: object
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _known_commodities(*layers: pd.DataFrame) -> set[str]:
    return set().union(*(set(layer["commodity"].dropna().astype(str)) for layer in layers))


def build_map(commodities: str | list[str] | None = None, stages: str | list[str] | None = None,
              data: str | Path | None = None, out: str | Path | None = "map.html",
              geojson: str | Path | None = None, gpkg: str | Path | None = None, *,
              allies: str = "msp", groups_file: str | Path | None = None, catalog=None,
              timestamp: str | None = None) -> MapResult:
    """Build the resource map and write the requested files.

    Parameters
    ----------
    commodities : str or list of str, optional
        Commodity ids (``"lithium,graphite"``); default all. Each must occur in the deposits
        or projects.
    stages : str or list of str, optional
        Project stages to keep (``mine, refine, metal, component``); deposits are always shown.
    data : str or Path, optional
        ``--data`` folder for the catalog (the map uses the bundled deposits and projects).
    out : str or Path, optional
        The HTML map (one self-contained offline file); ``None`` to skip.
    geojson, gpkg : str or Path, optional
        Also write both layers as one GeoJSON FeatureCollection / a GeoPackage with tables
        ``deposits`` and ``projects``.
    allies : str
        Group whose members are highlighted as allies (default ``msp``).
    groups_file : str or Path, optional
        Extra groups YAML (as ``--groups``).
    catalog : Catalog, optional
        Reuse a loaded catalog.
    timestamp : str, optional
        GeoPackage ``last_change`` (for reproducible files).

    Returns
    -------
    MapResult

    Raises
    ------
    CritminError
        Unknown commodity, stage or group, nothing to show, or a missing output folder. Nothing is
        written then: every file is rendered in memory first and the folders are checked.
    """
    from critmin.files import write_atomic
    from critmin.geo.export import geopackage_bytes, to_geojson
    from critmin.geo.figure import map_figure, render_map_html
    from critmin.geo.outlines import load_outlines
    from critmin.importers import groups
    from critmin.reference.catalog import Catalog

    cat = catalog or Catalog(data)
    wanted = normalise_list(commodities, "commodity")
    all_deposits = deposit_layer(cat.table("deposits"))
    all_projects = facility_layer(cat.table("projects"))
    if wanted is not None:
        known = _known_commodities(all_deposits, all_projects)
        unknown = [c for c in wanted if c not in known]
        if unknown:
            raise ConfigError(f"unknown commodity {unknown[0]!r} for --commodity; known: "
                              f"{', '.join(sorted(known))}")
    deposits = deposit_layer(cat.table("deposits"), wanted)
    projects = facility_layer(cat.table("projects"), wanted, stages)
    if deposits.empty and projects.empty:
        raise ConfigError("no deposit or project matches the --commodity / --stage filters")
    status = country_status(groups(groups_file), allies)

    targets = [Path(p) for p in (out, geojson, gpkg) if p is not None]
    for p in targets:
        if not p.parent.is_dir():
            raise ConfigError(f"output folder {str(p.parent)!r} does not exist")
    if len(set(targets)) < len(targets):
        raise ConfigError("--out, --geojson and --gpkg must be different files")

    fig = map_figure(deposits, projects, load_outlines(), status,
                     title=_title(wanted, stages, deposits, projects))
    payloads: list[tuple[Path, bytes]] = []
    if out is not None:
        payloads.append((Path(out), render_map_html(fig).encode("utf-8")))
    if geojson is not None:
        both = pd.concat([deposits, projects], ignore_index=True)
        fc = to_geojson(both)
        fc["name"] = "critmin resource map layers"
        payloads.append((Path(geojson), (json.dumps(fc, ensure_ascii=False, separators=(",", ":"))
                                         + "\n").encode("utf-8")))
    if gpkg is not None:
        payloads.append((Path(gpkg), geopackage_bytes({"deposits": deposits, "projects": projects}, timestamp)))

    written = [write_atomic(data_, path) for path, data_ in payloads]
    notes = [f"{deposits.attrs['dropped_no_coords']} deposits and {projects.attrs['dropped_no_coords']} "
             "projects have no coordinates and are not shown"]
    return MapResult(deposits, projects, fig, written, notes)


def _title(wanted, stages, deposits: pd.DataFrame, projects: pd.DataFrame) -> str:
    what = ", ".join(wanted) if wanted else "all commodities"
    st = normalise_list(stages, "stage")
    return (f"Critical-minerals resource map · {what}" + (f" · project stages {', '.join(st)}" if st else "")
            + f" · {deposits.attrs['records']} deposits, {projects.attrs['records']} projects")


def brief_map(catalog, priority_commodities) -> tuple[dict[str, pd.DataFrame], object]:
    """The resource map of the Rapid Response brief: deposits and projects of the priority minerals.

    Parameters
    ----------
    catalog : Catalog
        The loaded reference data.
    priority_commodities : iterable of str
        Commodity ids to show; those with no deposit or project are ignored, and when none is
        left the map shows every commodity.

    Returns
    -------
    (dict, Figure)
        ``{"map_deposits": layer, "map_facilities": layer}`` and the figure. A page embedding
        the figure must include :func:`critmin.geo.figure.offline_geo_script` before it.
    """
    from critmin.geo.figure import map_figure
    from critmin.geo.outlines import load_outlines
    from critmin.importers import groups

    all_deposits = deposit_layer(catalog.table("deposits"))
    all_projects = facility_layer(catalog.table("projects"))
    known = _known_commodities(all_deposits, all_projects)
    wanted = [c for c in dict.fromkeys(str(c).lower() for c in priority_commodities or []) if c in known]
    deposits = deposit_layer(catalog.table("deposits"), wanted) if wanted else all_deposits
    projects = facility_layer(catalog.table("projects"), wanted) if wanted else all_projects
    fig = map_figure(deposits, projects, load_outlines(), country_status(groups()),
                     title=_title(wanted or None, None, deposits, projects))
    return {"map_deposits": deposits, "map_facilities": projects}, fig
