"""``critmin map``: the resource map as one offline HTML file, with optional GeoJSON / GeoPackage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``map`` command to ``app`` (the main ``critmin`` app or a test app)."""
    from critmin.cli.common import err_console, handled

    @app.command("map")
    @handled
    def map_command(
        commodity: Annotated[str | None, typer.Option("--commodity", help="Commodity ids, e.g. "
                                                      "lithium,graphite (default: all)")] = None,
        stage: Annotated[str | None, typer.Option("--stage", help="Project stages: mine, refine, "
                                                  "metal, component (comma list)")] = None,
        data: Annotated[Path | None, typer.Option("--data", help="Folder with your own tables")] = None,
        out: Annotated[Path, typer.Option("--out", help="HTML map to write (self-contained, offline)")]
        = Path("map.html"),
        geojson: Annotated[Path | None, typer.Option("--geojson", help="Also write the points as GeoJSON")]
        = None,
        gpkg: Annotated[Path | None, typer.Option("--gpkg", help="Also write a GeoPackage "
                                                  "(tables deposits, projects)")] = None,
    ) -> None:
        """Map deposits and projects by commodity over allied / other countries (offline HTML)."""
        from critmin import api
        from critmin.cli.common import check_folder, check_list
        from critmin.constants import STAGES
        from critmin.errors import ConfigError
        from critmin.files import check_writable

        for option, path, endings in (("--out", out, (".html", ".htm")), ("--geojson", geojson, (".geojson", ".json")),
                                      ("--gpkg", gpkg, (".gpkg",))):
            if path is None:
                continue
            check_writable(path, option=option)
            if path.suffix.lower() not in endings:
                raise ConfigError(f"{option} {str(path)!r}: the file name should end with {' or '.join(endings)}")
        check_folder(data, "--data")
        check_list(stage, STAGES, "--stage", "stage")

        result = api.map(commodity, stage, data, out, geojson, gpkg)
        for path in result.meta["written"]:
            err_console.print(f"wrote {path}")
        for note in result.notes:
            err_console.print(f"[dim]note: {note}[/]")
