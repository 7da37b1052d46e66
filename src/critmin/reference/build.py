"""Raw public files → the bundled dataset (Parquet + MANIFEST.json), deterministically.

The same raw files give byte-identical Parquet files (fixed column order, dtypes, row order,
compression and no writer timestamps). MANIFEST.json records, per source, publisher, licence,
version, years and rows, the sha256 of every raw file read, and per table a content hash
(sha256 of its canonical CSV) so a rebuild can be compared with the shipped dataset.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from critmin.errors import DataError
from critmin.reference.catalog import bundled_dir
from critmin.reference.schema import CURATED_TABLES, TABLES

#: Source modules in ``critmin.reference.sources`` (each: SOURCES, parse(raw_root)).
SOURCE_MODULES = ("usgs_mcs", "baci", "baci_hs17", "usitc", "wgi", "prices", "deposits", "curated", "eu_crm")
MANIFEST_VERSION = 1


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_hash(frame: pd.DataFrame) -> str:
    """sha256 of the table's canonical CSV (independent of the Parquet writer version)."""
    csv = frame.to_csv(index=False, lineterminator="\n", float_format="%.17g", na_rep="")
    return hashlib.sha256(csv.encode("utf-8")).hexdigest()


def _conform(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Check columns and coerce dtypes to the table contract (schema.TABLES)."""
    if name not in TABLES:
        return frame.reset_index(drop=True)
    spec = TABLES[name]
    missing = [c for c in spec if c not in frame.columns]
    extra = [c for c in frame.columns if c not in spec]
    if missing or extra:
        raise DataError(f"table {name!r}: parser output does not match schema (missing {missing}, extra {extra})")
    out = frame[list(spec)].copy()
    for col, (dtype, _) in spec.items():
        out[col] = out[col].astype(dtype)
    return out.reset_index(drop=True)


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(None)   # no pandas metadata (holds library versions)
    pq.write_table(table, path, compression="zstd", compression_level=9, use_dictionary=True,
                   write_statistics=False, row_group_size=1 << 20)


def parse_all(raw: Path, console=None) -> tuple[dict[str, pd.DataFrame], list[dict], dict[str, pd.DataFrame]]:
    """Run every source parser; return tables, source records and diagnostic tables."""
    tables: dict[str, list[pd.DataFrame]] = {}
    sources: list[dict] = []
    diagnostics: dict[str, pd.DataFrame] = {}
    for mod_name in SOURCE_MODULES:
        mod = importlib.import_module(f"critmin.reference.sources.{mod_name}")
        if console:
            console.print(f"parsing {mod_name} …")
        parsed = mod.parse(raw)
        for name, frame in parsed.items():
            tables.setdefault(name, []).append(frame)
        for rec in mod.SOURCES:
            rec = dict(rec)
            rec["files"] = {f: _sha256(raw / f) for f in rec.get("files", [])}
            sources.append(rec)
        if hasattr(mod, "cross_check") and "production" in parsed:
            diagnostics["cross_checks"] = mod.cross_check(parsed["production"])
    merged = {name: pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
              for name, frames in tables.items()}
    return merged, sources, diagnostics


_PRICE_UNITS = {"dollars per pound": "USD/lb", "dollars per kilogram": "USD/kg", "dollars per metric ton": "USD/t",
                "dollars per troy ounce": "USD/troy oz", "dollars per short ton": "USD/short ton"}


def salient_prices(us_salient: pd.DataFrame) -> pd.DataFrame:
    """USGS MCS price rows (annual averages and unit values) in the ``prices`` table's format.

    They stay in ``us_salient`` too; here they join the World Bank and USGS series so that price
    analysis has one table. Units are normalised (``dollars per pound`` → ``USD/lb``), values unchanged.
    """
    p = us_salient[(us_salient["statistic"] == "price") & us_salient["value"].notna()]
    return pd.DataFrame({
        "commodity": p["commodity"], "series": "mcs: " + p["detail"].astype(str),
        "period": p["year"].astype(int).astype(str), "frequency": "annual", "value": p["value"],
        "unit": p["unit"].astype(str).map(lambda u: _PRICE_UNITS.get(u.strip().lower(), u)),
        "source": p["source"],
    }).sort_values(["commodity", "series", "period"], kind="stable")


def build(raw: str | Path, out: str | Path | None = None, console=None) -> dict:
    """Build the dataset from ``raw`` into ``out`` (default: the package's bundled folder).

    Written to a temporary folder first and moved into place only when every table succeeded.
    """
    raw = Path(raw)
    if not raw.is_dir():
        raise DataError(f"raw data folder {str(raw)!r} not found (pass --raw DIR)")
    out = Path(out) if out else bundled_dir()
    tables, sources, diagnostics = parse_all(raw, console)
    expected = set(TABLES) | set(CURATED_TABLES)
    missing = sorted(expected - set(tables))
    if missing:
        raise DataError(f"no parser produced table(s) {missing}")
    tables["prices"] = pd.concat([tables["prices"], salient_prices(tables["us_salient"])], ignore_index=True)
    tables = {name: _conform(name, frame) for name, frame in sorted(tables.items())}
    tables.update({k: v.reset_index(drop=True) for k, v in diagnostics.items()})
    # Per-source rows and years.
    for rec in sources:
        rows, years = 0, set()
        for frame in tables.values():
            if "source" in frame:
                sel = frame[frame["source"].astype(str) == rec["id"]]
                rows += len(sel)
                if "year" in sel:
                    years |= set(pd.to_numeric(sel["year"], errors="coerce").dropna().astype(int))
        rec["rows"] = rows
        rec["years"] = f"{min(years)}–{max(years)}" if years else rec.get("years", "")
    tmp = Path(tempfile.mkdtemp(prefix=".critmin-build-", dir=out.parent if out.parent.exists() else None))
    try:
        manifest = {"manifest_version": MANIFEST_VERSION, "sources": sources, "tables": {},
                    "parquet_writer": f"pyarrow {pa.__version__}"}
        for name, frame in tables.items():
            _write_parquet(frame, tmp / f"{name}.parquet")
            manifest["tables"][name] = {"rows": len(frame), "columns": list(frame.columns),
                                        "content_sha256": content_hash(frame),
                                        "sources": sorted(frame["source"].astype(str).unique().tolist())
                                        if "source" in frame else []}
        (tmp / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False, sort_keys=True)
                                           + "\n", "utf-8")
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*.parquet"):
            old.unlink()
        for f in sorted(tmp.iterdir()):
            shutil.move(str(f), out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if console and len(diagnostics.get("cross_checks", [])):
        console.print(f"[yellow]warning:[/] {len(diagnostics['cross_checks'])} production groups differ from the "
                      "reported world total beyond tolerance (see `critmin data show cross_checks`)")
    return {"out": str(out), "tables": list(tables)}


def verify(raw: str | Path, shipped: Path | None = None, console=None) -> list[str]:
    """Rebuild into a temporary folder and list every difference from the shipped dataset."""
    shipped = shipped or bundled_dir()
    with tempfile.TemporaryDirectory() as d:
        build(raw, Path(d) / "data", console=console)
        new = json.loads((Path(d) / "data" / "MANIFEST.json").read_text("utf-8"))
        old = json.loads((shipped / "MANIFEST.json").read_text("utf-8"))
        diffs = []
        if new["sources"] != old["sources"]:
            diffs.append("sources differ (raw files or source metadata changed)")
        for name in sorted(set(new["tables"]) | set(old["tables"])):
            if new["tables"].get(name) != old["tables"].get(name):
                diffs.append(f"table {name}: content differs (rows, columns or content hash)")
        same_writer = new.get("parquet_writer") == old.get("parquet_writer")
        for f in sorted((Path(d) / "data").glob("*.parquet")):
            shipped_f = shipped / f.name
            if not shipped_f.is_file():
                diffs.append(f"{f.name}: missing from the shipped dataset")
            elif shipped_f.read_bytes() != f.read_bytes():
                if same_writer:
                    diffs.append(f"{f.name}: bytes differ")
                elif console:
                    console.print(f"[yellow]note:[/] {f.name}: same content, different bytes "
                                  f"({old.get('parquet_writer')} vs {new.get('parquet_writer')})")
        return diffs
