"""Resource map: outlines converter, layers, spatial queries, figure/HTML (offline), GeoJSON, GeoPackage, CLI."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import struct
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from conftest import CHROMIUM, CHROMIUM_ARGS, need_browser
from typer.testing import CliRunner

from critmin.errors import ConfigError
from critmin.geo.export import GPKG_APPLICATION_ID, GPKG_USER_VERSION, gpkg_point, read_gpkg_point, to_geojson, to_geopackage
from critmin.geo.layers import LAYER_COLUMNS, country_status, deposit_layer, facility_layer
from critmin.geo.outlines import convert_world_atlas, load_outlines, topojson_to_geojson
from critmin.geo.queries import EARTH_RADIUS_KM, haversine_km, nearest, within_bbox
from critmin.importers import groups
from critmin.reference.catalog import Catalog

KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180  # 111.195 km


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog()


@pytest.fixture(scope="module")
def deposits(cat) -> pd.DataFrame:
    return deposit_layer(cat.table("deposits"))


@pytest.fixture(scope="module")
def projects(cat) -> pd.DataFrame:
    return facility_layer(cat.table("projects"))


def points(rows) -> pd.DataFrame:
    """A hand-made layer: rows of (id, lat, lon, commodity)."""
    frame = pd.DataFrame(rows, columns=["id", "lat", "lon", "commodity"])
    frame["name"] = "p-" + frame["id"]
    frame["kind"] = "project"
    return frame


# --------------------------------------------------------------------------- outlines
# Arc 0 runs (0,0) → (2,0) → (2,2), arc 1 (2,2) → (0,2) → (0,0), both delta-encoded; arc 2 is a hole.
TOPO = {
    "type": "Topology",
    "transform": {"scale": [0.5, 0.25], "translate": [10.0, 20.0]},
    "arcs": [[[0, 0], [2, 0], [0, 2]], [[2, 2], [-2, 0], [0, -2]],
             [[1, 1], [0, 0], [0, 0], [0, 0]]],
    "objects": {"countries": {"type": "GeometryCollection", "geometries": [
        {"type": "Polygon", "arcs": [[0, 1]], "id": "392", "properties": {"name": "Japan"}},
        {"type": "MultiPolygon", "arcs": [[[-2, -1]]], "properties": {"name": "Kosovo"}},
        {"type": "Polygon", "arcs": [[1, 0]], "properties": {"name": "N. Cyprus"}},
        {"type": "LineString", "arcs": [0], "properties": {"name": "skipped"}},
    ]}},
}


def test_topojson_decodes_quantized_delta_arcs():
    fc = topojson_to_geojson(TOPO)
    assert fc["type"] == "FeatureCollection"
    assert [f["properties"]["name"] for f in fc["features"]] == ["Japan", "Kosovo", "N. Cyprus"]
    japan = fc["features"][0]
    assert japan["id"] == "392"
    # x = q·0.5 + 10, y = q·0.25 + 20; junction points kept once; ring closed
    assert japan["geometry"] == {"type": "Polygon", "coordinates": [
        [[10.0, 20.0], [11.0, 20.0], [11.0, 20.5], [10.0, 20.5], [10.0, 20.0]]]}
    # ~1 = -2 is arc 1 reversed, then ~0 = -1 arc 0 reversed: the opposite winding
    kosovo = fc["features"][1]["geometry"]
    assert kosovo["type"] == "MultiPolygon"
    assert kosovo["coordinates"] == [[[[10.0, 20.0], [10.0, 20.5], [11.0, 20.5], [11.0, 20.0], [10.0, 20.0]]]]


def test_topojson_unquantized_hole_and_collapse():
    topo = {"type": "Topology", "arcs": [[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]],
                                         [[1, 1], [1, 2], [2, 2], [2, 1], [1, 1]],
                                         [[5, 5], [5.0001, 5], [5, 5.0001], [5, 5]]],
            "objects": {"a": {"type": "GeometryCollection", "geometries": [
                {"type": "Polygon", "arcs": [[0], [1]]}, {"type": "Polygon", "arcs": [[2]]}]}}}
    fc = topojson_to_geojson(topo, decimals=3)
    # the tiny triangle collapses to one point at 3 decimals and is dropped
    assert len(fc["features"]) == 1
    rings = fc["features"][0]["geometry"]["coordinates"]
    assert len(rings) == 2 and rings[1][0] == [1, 1]
    with pytest.raises(Exception, match="Topology"):
        topojson_to_geojson({"type": "FeatureCollection"})


def test_convert_world_atlas_sets_iso3_and_name():
    fc = convert_world_atlas(TOPO)
    props = [f["properties"] for f in fc["features"]]
    assert props == [{"iso3": "JPN", "name": "Japan"}, {"iso3": "XKX", "name": "Kosovo"},
                     {"iso3": None, "name": "N. Cyprus"}]


def test_shipped_outlines_are_compact_and_licensed():
    data = resources.files("critmin.geo").joinpath("data")
    size = len(data.joinpath("countries-110m.geojson").read_bytes())
    assert size < 250_000
    fc = load_outlines()
    assert len(fc["features"]) == 177
    iso = {f["properties"]["iso3"] for f in fc["features"]}
    assert {"USA", "JPN", "AUS", "CHN", "COD", "XKX"} <= iso
    text = data.joinpath("countries-110m.geojson").read_text("utf-8")
    assert not re.search(r"\d\.\d{4,}", text), "coordinates must be rounded to 3 decimals"
    notice = data.joinpath("NOTICE.md").read_text("utf-8")
    for needle in ("Natural Earth", "public domain", "world-atlas", "2.0.2", "ISC",
                   "2516c915867c7baf18ddec727aec46c315541a07cfb3d79a6559b05d5e94eee8",
                   "topojson_to_geojson", "python -m critmin.geo.outlines"):
        assert needle in notice


# --------------------------------------------------------------------------- layers
def test_deposit_layer_from_bundled_data(cat, deposits):
    raw = cat.table("deposits")
    with_xy = raw.dropna(subset=["lat", "lon"])
    assert deposits.attrs["dropped_no_coords"] == len(raw) - len(with_xy) == 7
    assert deposits.attrs["records"] == len(with_xy) == 5303
    n_rows = sum(max(1, len([t for t in s.split(";") if t])) for s in with_xy["commodities"].fillna(""))
    assert len(deposits) == n_rows
    assert tuple(deposits.columns) == LAYER_COLUMNS
    assert set(deposits["kind"]) == {"deposit"}
    # a multi-commodity deposit explodes into one row per commodity
    fort_cady = deposits[deposits["id"] == "lithium-us-CA00002"]
    assert sorted(fort_cady["commodity"]) == ["boron", "lithium"]
    assert fort_cady["lat"].nunique() == 1


def test_deposit_layer_filters_commodities(deposits, cat):
    li = deposit_layer(cat.table("deposits"), "Lithium, graphite")
    assert set(li["commodity"]) == {"lithium", "graphite"}
    assert len(li) == int(deposits["commodity"].isin(["lithium", "graphite"]).sum())


def test_facility_layer_from_bundled_data(cat, projects):
    raw = cat.table("projects")
    with_xy = raw.dropna(subset=["lat", "lon"])
    assert projects.attrs["records"] == len(with_xy) == 14
    assert projects.attrs["dropped_no_coords"] == len(raw) - len(with_xy)
    assert set(projects["kind"]) == {"project"}
    assert projects[["lat", "lon"]].notna().all().all()
    mine = facility_layer(raw, stages="mine")
    assert len(mine) and all("mine" in s.split(";") for s in mine["stage"])
    with pytest.raises(ConfigError, match="unknown stage 'smelt'"):
        facility_layer(raw, stages="smelt")


def test_country_status_highlights_allies():
    g = groups()
    cs = country_status(g)
    st = dict(zip(cs["iso3"], cs["status"], strict=True))
    assert st["USA"] == "USA" and st["JPN"] == "JPN"
    assert st["AUS"] == "ally" and st["DEU"] == "ally"
    assert st["CHN"] == "other" and st["COD"] == "other"
    assert (cs["status"] == "ally").sum() == len(set(g["msp"]["members"]) - {"USA", "JPN"})
    with pytest.raises(ConfigError, match="unknown allies group"):
        country_status(g, allies="nato")


# --------------------------------------------------------------------------- queries
def test_within_bbox_plain_and_antimeridian():
    layer = points([("a", 0, 179.5, "x"), ("b", 5, -179.5, "x"), ("c", 0, 0, "x"),
                    ("d", 0, 170.0, "x"), ("e", 0, -169.0, "x"), ("f", 20, 179.0, "x")])
    assert within_bbox(layer, -10, -10, 10, 10)["id"].tolist() == ["c"]
    # 170 → -170 crosses the antimeridian: 20 degrees of longitude around 180
    assert within_bbox(layer, 170, -10, -170, 10)["id"].tolist() == ["a", "b", "d"]
    assert within_bbox(layer, -180, -90, 180, 90)["id"].tolist() == list("abcdef")


@pytest.mark.parametrize("args, msg", [
    ((0, -91, 10, 10), "min_lat must be between -90 and 90"),
    ((0, 0, 190, 10), "max_lon must be between -180 and 180"),
    ((0, 10, 10, 0), "north of max_lat"),
    (("west", 0, 10, 10), "min_lon must be a number"),
])
def test_within_bbox_rejects_bad_boxes(args, msg):
    with pytest.raises(ConfigError, match=msg):
        within_bbox(points([("a", 0, 0, "x")]), *args)


def test_nearest_hand_checkable():
    src = points([("A", 0.0, 0.0, "li")])
    dst = points([("B", 1.0, 0.0, "co"), ("C", 0.0, 2.0, "li"), ("D", 0.0, -3.0, "li")])
    one = nearest(src, dst)
    assert one[["from_id", "to_id", "rank"]].values.tolist() == [["A", "B", 1]]
    # one degree of latitude on the mean-radius sphere
    assert one["distance_km"].iloc[0] == pytest.approx(111.195, abs=1e-3)
    assert one["distance_km"].iloc[0] == pytest.approx(KM_PER_DEGREE, rel=1e-12)
    two = nearest(src, dst, k=2)
    assert two["to_id"].tolist() == ["B", "C"]
    assert two["distance_km"].tolist() == pytest.approx([KM_PER_DEGREE, 2 * KM_PER_DEGREE])
    same = nearest(src, dst, k=5, same_commodity=True)
    assert same["to_id"].tolist() == ["C", "D"] and same.attrs["unmatched"] == 0
    lonely = nearest(points([("Z", 0, 0, "zz")]), dst, same_commodity=True)
    assert lonely.empty and lonely.attrs["unmatched"] == 1
    # across the antimeridian: 179.5 → -179.5 is one degree of longitude on the equator
    assert haversine_km(0, 179.5, 0, -179.5) == pytest.approx(KM_PER_DEGREE)


def test_nearest_on_bundled_layers(deposits, projects):
    li = deposits[deposits["commodity"] == "lithium"]
    res = nearest(li, projects, same_commodity=True)
    assert len(res) == len(li) and set(res["to_commodity"]) == {"lithium"}
    assert (res["distance_km"] >= 0).all() and (res["distance_km"] <= math.pi * EARTH_RADIUS_KM).all()


@pytest.mark.parametrize("bad, msg", [
    (dict(k=0), "k must be a positive integer"),
    (dict(k=1.5), "k must be a positive integer"),
    (dict(lat=91.0), "lat = 91.0"),
    (dict(lat=np.nan), "lat = nan"),
    (dict(lon=-181.0), "lon = -181.0"),
])
def test_nearest_rejects_bad_inputs(bad, msg):
    src = points([("A", bad.get("lat", 0.0), bad.get("lon", 0.0), "x")])
    with pytest.raises(ConfigError, match=msg):
        nearest(src, points([("B", 1.0, 0.0, "x")]), k=bad.get("k", 1))


# --------------------------------------------------------------------------- exports
def test_to_geojson_structure():
    layer = points([("A", 35.5, 139.7, "li"), ("B", -20.0, -70.25, None)])
    layer["capacity"] = [np.float64(1.5), np.nan]
    fc = to_geojson(layer)
    json.dumps(fc, allow_nan=False)  # strict JSON: NaN became null
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 2
    f0, f1 = fc["features"]
    assert f0["type"] == "Feature"
    assert f0["geometry"] == {"type": "Point", "coordinates": [139.7, 35.5]}  # lon, lat
    assert set(f0["properties"]) == {"id", "commodity", "name", "kind", "capacity"}
    assert f0["properties"]["capacity"] == 1.5 and f1["properties"]["capacity"] is None
    assert f1["properties"]["commodity"] is None
    with pytest.raises(ConfigError):
        to_geojson(points([("X", 95.0, 0.0, "li")]))


def test_gpkg_point_binary_layout():
    blob = gpkg_point(139.7, 35.5)
    assert blob[:2] == b"GP" and blob[2] == 0 and blob[3] == 0b00000001
    assert struct.unpack("<i", blob[4:8])[0] == 4326
    assert blob[8] == 1 and struct.unpack("<I", blob[9:13])[0] == 1
    assert struct.unpack("<dd", blob[13:29]) == (139.7, 35.5)
    assert read_gpkg_point(blob) == (139.7, 35.5, 4326)


def test_geopackage_round_trip(tmp_path, deposits, projects):
    path = tmp_path / "layers.gpkg"
    li = deposits[deposits["commodity"] == "lithium"]
    to_geopackage({"deposits": li, "projects": projects}, path, timestamp="2026-01-01T00:00:00.000Z")
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA application_id").fetchone()[0] == GPKG_APPLICATION_ID == 0x47504B47
        assert db.execute("PRAGMA user_version").fetchone()[0] == GPKG_USER_VERSION == 10300
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        srs = {r[0]: r[1] for r in db.execute("SELECT srs_id, organization FROM gpkg_spatial_ref_sys")}
        assert srs == {-1: "NONE", 0: "NONE", 4326: "EPSG"}
        contents = db.execute("SELECT table_name, data_type, srs_id, min_x, max_y, last_change "
                              "FROM gpkg_contents ORDER BY table_name").fetchall()
        assert [c[:3] for c in contents] == [("deposits", "features", 4326), ("projects", "features", 4326)]
        assert contents[0][3] == pytest.approx(li["lon"].min()) and contents[0][4] == pytest.approx(li["lat"].max())
        assert contents[0][5] == "2026-01-01T00:00:00.000Z"
        geom_cols = db.execute("SELECT table_name, column_name, geometry_type_name, srs_id, z, m "
                               "FROM gpkg_geometry_columns ORDER BY table_name").fetchall()
        assert geom_cols == [("deposits", "geom", "POINT", 4326, 0, 0), ("projects", "geom", "POINT", 4326, 0, 0)]
        cols = [r[1] for r in db.execute('PRAGMA table_info("projects")')]
        assert cols[:2] == ["fid", "geom"] and "lat" not in cols and "name" in cols
        rows = db.execute('SELECT fid, geom, id, commodity FROM "projects" ORDER BY fid').fetchall()
    finally:
        db.close()
    assert len(rows) == len(projects)
    for (_fid, blob, pid, com), (_, row) in zip(rows, projects.iterrows(), strict=True):
        lon, lat, srs_id = read_gpkg_point(blob)
        assert (pid, com, srs_id) == (row["id"], row["commodity"], 4326)
        assert (lon, lat) == (row["lon"], row["lat"])


def test_geopackage_rejects_bad_names(tmp_path):
    layer = points([("A", 0.0, 0.0, "x")])
    for name in ("gpkg_contents", "1abc", "a b"):
        with pytest.raises(ConfigError, match="bad GeoPackage table name"):
            to_geopackage({name: layer}, tmp_path / "x.gpkg")
    with pytest.raises(ConfigError, match="reserved"):
        to_geopackage({"ok": layer.assign(fid=1)}, tmp_path / "x.gpkg")
    assert not list(tmp_path.iterdir())


def test_geopackage_opens_with_gdal_if_available(tmp_path, projects):
    pyogrio = pytest.importorskip("pyogrio")
    path = tmp_path / "p.gpkg"
    to_geopackage({"projects": projects}, path)
    assert pyogrio.list_layers(path).tolist() == [["projects", "Point"]]
    info = pyogrio.read_info(path, layer="projects")
    assert info["features"] == len(projects) and "4326" in info["crs"]
    meta, _, geometry, fields = pyogrio.raw.read(path, layer="projects")
    assert fields[list(meta["fields"]).index("id")].tolist() == projects["id"].tolist()
    assert meta["geometry_type"] == "Point" and len(geometry) == len(projects)


# --------------------------------------------------------------------------- figure and HTML
@pytest.fixture(scope="module")
def small_fig(cat):
    from critmin.geo.figure import map_figure

    d = deposit_layer(cat.table("deposits"), "lithium,graphite")
    p = facility_layer(cat.table("projects"), "lithium,graphite")
    return map_figure(d, p, load_outlines(), country_status(groups()))


def test_map_figure_traces_and_base_layers_off(small_fig):
    import plotly.graph_objects as go

    from critmin.geo.figure import BASE_LAYER_FLAGS

    geo = small_fig.layout.geo
    assert geo.visible is False
    for flag in ("showland", "showcountries", "showcoastlines", "showocean", "showlakes", "showrivers",
                 "showframe", "showsubunits"):
        assert flag in BASE_LAYER_FLAGS and getattr(geo, flag) is False, flag
    kinds = [type(t).__name__ for t in small_fig.data]
    # a lat/lon trace first: plotly.js decides on fetching its topology from the first trace
    assert kinds[0] == "Scattergeo" and small_fig.data[0].locationmode is None
    chor = [t for t in small_fig.data if isinstance(t, go.Choropleth)]
    assert chor[0].featureidkey == "properties.iso3" and isinstance(chor[0].geojson, dict)
    assert "USA" in chor[0].locations and "JPN" in chor[0].locations
    pts = [t for t in small_fig.data if isinstance(t, go.Scattergeo) and t.legendgroup != "countries"]
    assert {t.marker.symbol for t in pts} == {"circle", "diamond"}
    proj = [t for t in pts if t.marker.symbol == "diamond"]
    assert all(t.marker.size > 5 for t in proj)
    assert "commodity: lithium" in next(t for t in proj if t.legendgroup == "lithium").text[0]
    menu = small_fig.layout.updatemenus[0]
    assert [b.label for b in menu.buttons] == ["All commodities", "graphite", "lithium"]
    vis = menu.buttons[2].args[0]["visible"]
    assert len(vis) == len(small_fig.data)
    shown = {t.legendgroup for v, t in zip(vis, small_fig.data, strict=True) if v}
    assert shown == {"countries", "lithium", None}  # None: the choropleth


def _strip_plotly_bundle(text: str) -> tuple[str, int]:
    """The HTML with the inlined plotly.js bundle cut out, and how many bundles were found."""
    pattern = re.compile(r"<script[^>]*>/\*\*\s*\n\* plotly\.js v.*?</script>", re.S)
    return pattern.subn("<script>PLOTLY</script>", text)


def test_map_html_is_self_contained_and_offline(tmp_path, small_fig):
    from critmin.geo.figure import topojson_name, write_map_html

    out = write_map_html(small_fig, tmp_path / "map.html")
    assert [p.name for p in tmp_path.iterdir()] == ["map.html"]
    text = out.read_text("utf-8")
    rest, n = _strip_plotly_bundle(text)
    assert n == 1, "plotly.js must be inlined exactly once"
    assert "<script src" not in text and "<link" not in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", rest)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", rest)
    assert "cdn.plot.ly" not in rest and "https://" not in rest.split("Plotly.newPlot")[0]
    # the config handed to Plotly.newPlot names no topology URL
    config = json.loads(re.search(r"\{[^{}]*\"topojsonURL\"[^{}]*\}", rest).group(0))
    assert config["topojsonURL"] == "" and config["displaylogo"] is False
    # the empty topology is registered before the plot is created
    assert topojson_name(small_fig) == "world_110m"
    seed = rest.index("PlotlyGeoAssets.topojson, {\"world_110m\"")
    assert seed < rest.index("PLOTLY") < rest.index("Plotly.newPlot")


# --------------------------------------------------------------------------- browser (optional)


def _open_in_chromium(page_path: Path) -> dict:
    """Load a page; every request other than the page itself (file: included) is recorded and refused."""
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        own = page_path.as_uri()

        def route(r):
            if r.request.url == own or r.request.url.startswith(("data:", "blob:", "about:")):
                return r.continue_()
            requests.append(r.request.url)
            return r.abort()

        page.route("**/*", route)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(own, wait_until="load")
        page.wait_for_selector(".main-svg", timeout=30_000)
        page.wait_for_timeout(1500)
        result = {"countries": page.locator("path.choroplethlocation").count(),
                  "points": page.locator(".scattergeo path.point").count()}
        browser.close()
    return {**result, "requests": requests, "errors": errors}


def test_map_renders_in_chromium_without_any_request(tmp_path, small_fig):
    need_browser()
    from critmin.geo.figure import write_map_html

    res = _open_in_chromium(write_map_html(small_fig, tmp_path / "map.html"))
    assert res["requests"] == [] and res["errors"] == []
    assert res["countries"] == 177
    n_points = sum(len(t.lat) for t in small_fig.data if t.legendgroup not in (None, "countries"))
    assert res["points"] == n_points


def test_unseeded_embedding_stays_offline_in_chromium(tmp_path, small_fig):
    """A page embedding the figure without the seed script (as a report template might).

    Only the trace order protects it (plotly.js looks at the first trace); if this starts failing
    after a Plotly upgrade, such pages must include ``offline_geo_script``.
    """
    need_browser()
    page = tmp_path / "embed.html"
    page.write_text(small_fig.to_html(full_html=True, include_plotlyjs=True,
                                      config={"topojsonURL": "", "displaylogo": False}), "utf-8")
    res = _open_in_chromium(page)
    assert res["requests"] == [] and res["countries"] == 177


# --------------------------------------------------------------------------- workflow and CLI
@pytest.fixture()
def cli_app() -> typer.Typer:
    from critmin.cli import map_cmd

    app = typer.Typer()

    @app.callback()
    def _root() -> None:  # a callback keeps "map" a sub-command, as in the main app
        """test app"""

    map_cmd.register(app)
    return app


def test_cli_writes_map_geojson_and_gpkg(tmp_path, cli_app):
    res = CliRunner().invoke(cli_app, ["map", "--commodity", "lithium,graphite", "--stage", "mine,refine",
                                       "--out", str(tmp_path / "m.html"), "--geojson", str(tmp_path / "m.geojson"),
                                       "--gpkg", str(tmp_path / "m.gpkg")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.geojson", "m.gpkg", "m.html"]
    fc = json.loads((tmp_path / "m.geojson").read_text("utf-8"))
    assert {f["properties"]["commodity"] for f in fc["features"]} == {"lithium", "graphite"}
    assert {f["properties"]["kind"] for f in fc["features"]} == {"deposit", "project"}
    db = sqlite3.connect(tmp_path / "m.gpkg")
    try:
        n = db.execute('SELECT COUNT(*) FROM "deposits"').fetchone()[0]
    finally:
        db.close()
    assert n == sum(f["properties"]["kind"] == "deposit" for f in fc["features"])
    assert "plotly.js v" in (tmp_path / "m.html").read_text("utf-8")


@pytest.mark.parametrize("args, msg", [
    (["--commodity", "unobtainium"], "unknown commodity 'unobtainium'"),
    (["--stage", "smelt"], "unknown stage 'smelt'"),
    (["--out", "missing-dir/m.html"], "does not exist"),
])
def test_cli_bad_options_exit_2_and_write_nothing(tmp_path, cli_app, monkeypatch, args, msg):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli_app, ["map", "--geojson", "m.geojson", *args])
    assert res.exit_code == 2
    assert msg in res.output
    assert list(tmp_path.iterdir()) == []


def test_build_map_and_brief_map(cat, tmp_path):
    from critmin.geo.workflow import brief_map, build_map

    result = build_map("rare-earths", out=tmp_path / "re.html", catalog=cat)
    assert result.written == [tmp_path / "re.html"]
    assert set(result.deposits["commodity"]) == {"rare-earths"} and len(result.projects) > 0
    assert "7 deposits" in result.notes[0]
    layers, fig = brief_map(cat, ["rare-earths", "no-such-thing"])
    assert set(layers) == {"map_deposits", "map_facilities"}
    assert set(layers["map_facilities"]["commodity"]) == {"rare-earths"}
    assert fig.layout.geo.visible is False


def test_geo_namespace_is_lazy():
    import critmin.geo as geo

    assert geo.nearest is nearest and callable(geo.map_figure) and callable(geo.build_map)
    with pytest.raises(AttributeError):
        geo.no_such_function  # noqa: B018
