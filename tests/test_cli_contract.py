"""The command-line contract, generated from the Typer app: a new command or option is covered without new test code.

For every command of ``critmin`` (found by walking the app):

- ``--help`` exits 0, lists every option and shows no reStructuredText markup;
- its README example runs and exits 0 (``readme_examples``, shared with ``test_readme_commands.py``);
- every option (and argument) has a valid value: the command runs with all of them at once and exits 0, options
  that exclude each other (``EXCLUSIVE``) in runs of their own; a command whose README example already gives every
  option is covered by that example (``data build``, ``data verify``); ``serve`` is not run (it runs until stopped);
- every option (and argument) has an invalid value: the command exits 2 with exactly one line, ``error: …``, that
  names the option, no traceback, and writes nothing.

The values come from ``VALID`` and ``INVALID`` (by option name, ``"command:option"`` for one command); flags are
valid when given and invalid with a value (``--flag=x``). A new option with a name not in the tables fails
:func:`test_every_option_has_values`, which says what to add. ``FAST`` keeps the runs small (``--draws 20``,
``--paths 100``) and ``BASE`` gives a command what it needs to run at all.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import readme_examples as rx
import typer
from conftest import REGRESSION, need_raw
from typer.testing import CliRunner

from critmin.cli.main import app

ROOT = typer.main.get_command(app)


def _walk(node, path=()):
    subs = getattr(node, "commands", None)
    if subs is None:
        return [(path, node)]
    return [leaf for name, sub in subs.items() for leaf in _walk(sub, (*path, name))]


COMMANDS = dict(_walk(ROOT))
#: Commands not run with valid values, and why (their invalid values are still checked: they fail before starting).
NOT_RUN = {("serve",): "starts the marketplace service, which runs until it is stopped (tests/test_server*.py run it)",
           ("dashboard",): "starts the dashboard's web server, which runs until it is stopped "
                           "(tests/test_dashboard_browser.py runs it)"}


def key(param) -> str:
    """``--opt`` for an option, ``NAME`` for an argument."""
    return param.opts[0] if param.param_type_name == "option" else param.name.upper()


def is_flag(param) -> bool:
    return getattr(param, "is_flag", False)


# --- values ----------------------------------------------------------------------------------------------------------
# Placeholders {name} are files and folders made in the run's folder by FIXTURES below.

VALID = {
    "--importer": "USA+JPN", "assess:--importer": "USA", "priorities:--importer": "USA", "brief:--importer": "USA",
    "--allies": "g7", "--year": "2022", "--as-of": "2026-12-04",
    "--data": "{regression}", "monitor:--data": "{new_trade}", "policy floor:--data": "{prices}",
    "policy cfd:--data": "{prices}", "policy offtake:--data": "{prices}", "policy tariff:--data": "{prices}",
    "--params": "{method_params}", "policy permitting:--params": "{permitting_params}", "--groups": "{groups}",
    "--method": "eu-sr", "--stage": "mine", "map:--stage": "mine,refine",
    "--format": "csv", "--out": "out.csv", "brief:--out": "brief-out", "map:--out": "m.html", "data build:--out": "dataset",
    "--columns": "commodity", "priorities:--columns": "commodity,priority", "data show:--columns": "country,value",
    "monitor:--columns": "rule,message", "risk:--columns": "commodity,stage", "scenario run:--columns": "consumer,commodity",
    "stockpile plan:--columns": "commodity,holder,stock_t", "stockpile simulate:--columns": "commodity,month",
    "invest select:--columns": "project_id,selected", "policy floor:--columns": "quantity,mean",
    "policy cfd:--columns": "quantity,mean", "policy offtake:--columns": "quantity,mean",
    "policy tariff:--columns": "quantity,mean", "policy permitting:--columns": "quantity,mean",
    "--top": "5", "--limit": "5", "--where": "stage=mine", "TABLE": "production", "--monitor": "{new_trade}",
    "--commodity": "gallium", "map:--commodity": "lithium", "invest select:--commodity": "rare-earths",
    "policy floor:--commodity": "copper", "policy cfd:--commodity": "copper", "policy offtake:--commodity": "copper",
    "policy tariff:--commodity": "copper",
    "--geojson": "m.geojson", "--gpkg": "m.gpkg", "--thresholds": "{thresholds}",
    "--draws": "20", "--seed": "3", "--months": "6", "--workers": "1", "--scheduler": "{scheduler}",
    "--hazards": "{hazards}", "--raw": "{raw}",
    "--holders": "USA,JPN", "--budget": "1e8", "--joint-budget": "2e8", "--share": "0.5", "--cvar-alpha": "0.9",
    "--cvar-weight": "0.1", "--min-days": "1", "--high-risk": "gallium", "--frontier": "1e7,1e8", "--plan": "{plan}",
    "--budgets": "grant=500,loan=3000", "--candidates": "{candidates}", "--instruments": "{instruments}",
    "--start-year": "2026", "--max-country-share": "0.5", "--certified-only": None, "--track": "fast41",
    "--preset": "dod_mp_ndpr_floor", "policy cfd:--preset": "{cfd_preset}", "--series": "COPPER", "--floor": "9000",
    "--volume": "1000", "--years": "5",
    "--rate": "0.05", "--paths": "100", "--capex": "100", "--unit-cost": "5000", "--upside-share": "0.5",
    "--strike": "9000", "--fixed-price": "9000", "--resale-haircut": "0.1", "--reference": "9500",
    "--tariff-rate": "0.2", "--nonmarket-volume": "1000",
    "--project": "US-TALON-TAMARACK", "--horizon": "60", "--months-saved": "1,6", "--relief": "100",
    "NAME": "china-ga-ge-2023", "FILE": "{audit_log}", "--head": "{audit_head}", "--db": "{audit_db}",
    "--host": "127.0.0.1", "--port": "8000", "--data-dir": "market-data", "--admin-country": "JPN",
    "--rate-limit": "100", "--max-connections": "64", "--keep-alive": "30",
}

INVALID = {
    "--importer": "USX", "--allies": "g8", "--year": "1800", "--as-of": "2026-13-01", "--data": "no-such-folder",
    "--params": "no-such.yml", "--groups": "no-such.yml", "--method": "hhii", "--stage": "refining",
    "--format": "docx", "--out": "{folder}", "brief:--out": "{file}", "data build:--out": "{file}",
    "--columns": "no_such_column", "--top": "0", "--limit": "-1", "--where": "colour=red", "TABLE": "productoin",
    "--monitor": "no-such-folder", "--commodity": "lithum", "policy floor:--commodity": "coper",
    "policy cfd:--commodity": "coper", "policy offtake:--commodity": "coper", "policy tariff:--commodity": "coper",
    "--geojson": "{folder}", "--gpkg": "m.html", "--thresholds": "no-such.yml", "--draws": "0", "--seed": "-1",
    "--months": "0", "--workers": "0", "--scheduler": "zz", "--hazards": "no-such.yml", "--raw": "no-such-folder",
    "--holders": "USX", "--budget": "-1", "--joint-budget": "-1", "--share": "2", "--cvar-alpha": "1.5",
    "--cvar-weight": "-1", "--min-days": "-1", "--high-risk": "lithum", "--frontier": "a,b", "--plan": "no-such.csv",
    "--budgets": "grnt=500", "--candidates": "no-such.csv", "--instruments": "no-such.csv", "--start-year": "1800",
    "--max-country-share": "2", "--track": "fast42", "--preset": "dod_mp_floor", "--series": "zz", "--floor": "-5",
    "--volume": "-1", "--years": "0", "--rate": "2", "--paths": "50", "--capex": "-5", "--unit-cost": "-1",
    "--upside-share": "2", "--strike": "abc", "--fixed-price": "abc", "--resale-haircut": "2", "--reference": "abc",
    "--tariff-rate": "-0.1", "--nonmarket-volume": "-1", "--project": "NOPE", "--horizon": "0",
    "--months-saved": "a,b", "--relief": "-1", "NAME": "china-ga-ge-202", "FILE": "no-such.jsonl", "--db": "zz",
    "--head": "zz", "--host": "bad host!", "--port": "0", "--data-dir": "{file}", "--admin-country": "ZZZ",
    "--rate-limit": "-1", "--max-connections": "0", "--keep-alive": "0",
}

#: Added to every run of a command that has the option (small and fast).
FAST = {"--draws": "20", "--paths": "100", "--commodity": "gallium", "invest select:--commodity": "rare-earths",
        "map:--commodity": "lithium", "--importer": "USA", "scenario run:--importer": "USA+JPN",
        "risk:--importer": "USA+JPN"}
#: What a command needs to run at all (with FAST and its required options).
BASE = {
    "policy floor": ["--commodity", "copper", "--floor", "9000", "--volume", "1000"],
    "policy cfd": ["--commodity", "copper", "--strike", "9000", "--volume", "1000"],
    "policy offtake": ["--commodity", "copper", "--fixed-price", "9000", "--volume", "1000"],
    "policy tariff": ["--commodity", "copper", "--tariff-rate", "0.2", "--nonmarket-volume", "1000", "--volume", "1000"],
    "audit verify": ["FILE"],
    "monitor": [],
}
#: Options that exclude each other: the first joins the command's run with every option, each other one runs alone.
EXCLUSIVE = [("--budget", "--joint-budget"), ("--workers", "--scheduler"), ("--reference", "--tariff-rate"),
             ("FILE", "--db")]


def lookup(table: dict, path: tuple[str, ...], name: str):
    return table.get(f"{' '.join(path)}:{name}", table.get(name, KeyError))


# --- fixtures: files the values name ---------------------------------------------------------------------------------

def _new_trade(d: Path) -> str:
    import critmin

    t = critmin.load("us_trade")
    t = t[(t["period"] == "2026-YTD04") & (t["flow"] == "import")]
    (d / "new-trade").mkdir(exist_ok=True)
    t.to_csv(d / "new-trade" / "us_trade.csv", index=False)
    return str(d / "new-trade")


def _prices(d: Path) -> str:
    import critmin

    p = critmin.load("prices")
    p = p[(p["commodity"] == "copper") & (p["series"] == "COPPER")].tail(240)
    (d / "prices").mkdir(exist_ok=True)
    p[["commodity", "series", "period", "frequency", "value", "unit"]].to_csv(d / "prices" / "prices.csv", index=False)
    return str(d / "prices")


def _copy(src: Path, name: str):
    def make(d: Path) -> str:
        shutil.copy(src, d / name)
        return str(d / name)
    return make


def _write(name: str, text: str):
    def make(d: Path) -> str:
        (d / name).write_text(text, "utf-8")
        return str(d / name)
    return make


def _audit_head(d: Path) -> str:
    import json

    lines = (rx.REPO / "docs" / "examples" / "audit-log.jsonl").read_text("utf-8").splitlines()
    return json.loads(lines[-1])["hash"]


def _audit_db(d: Path) -> str:
    from critmin.server import db, migrate

    url = f"sqlite:///{d / 'market.sqlite3'}"
    engine = db.make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


_CLUSTER = []


def _scheduler(d: Path) -> str:
    if not _CLUSTER:
        from distributed import LocalCluster

        _CLUSTER.append(LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                     dashboard_address=None))
    return _CLUSTER[0].scheduler_address


def _raw(d: Path) -> str:
    return str(need_raw())


def _folder(d: Path) -> str:
    (d / "a-folder").mkdir(exist_ok=True)
    return "a-folder"


def _file(d: Path) -> str:
    (d / "a-file").write_text("x", "utf-8")
    return "a-file"


SRC = Path(__file__).resolve().parents[1] / "src" / "critmin"
FIXTURES = {
    "regression": lambda d: str(REGRESSION / "geopolrisk_usa_2022"),
    "new_trade": _new_trade, "prices": _prices,
    "method_params": _copy(SRC / "methods" / "params.yml", "params.yml"),
    "permitting_params": _copy(SRC / "policy" / "permitting.yml", "permitting.yml"),
    "thresholds": _copy(SRC / "monitor" / "thresholds.yml", "thresholds.yml"),
    "groups": _write("groups.yml", "pacific:\n  name: Pacific partners\n  members: [USA, JPN, AUS, CAN]\n"),
    "hazards": _write("hazards.yml", "background_rate: 0.0\n"),
    "cfd_preset": _write("cfd.yml", "name: copper-cfd\nmeasure: cfd\ncommodity: copper\n"
                                    "floor: {value: 9000, unit: USD/t}\nyears: {value: 5}\n"),
    "plan": _write("plan.csv", "commodity,holder,stock_t\ngallium,USA,1\ngallium,JPN,1\n"),
    "candidates": _write("candidates.csv", "project_id,country_iso3,commodity,stage_id,capacity_tpa,capex_usd_m,status\n"
                                           "X-1,AUS,rare-earths,refine,1000,100,construction\n"),
    "instruments": _write("instruments.csv", "instrument,cost_rate,max_share\ngrant,1,1\nloan,0.1,0.8\n"),
    "audit_log": lambda d: str(rx.REPO / "docs" / "examples" / "audit-log.jsonl"),
    "audit_head": _audit_head, "audit_db": _audit_db, "scheduler": _scheduler, "raw": _raw,
    "folder": _folder, "file": _file,
}


def resolve(value: str, d: Path) -> str:
    if value.startswith("{") and value.endswith("}"):
        return FIXTURES[value[1:-1]](d)
    return value


@pytest.fixture(scope="module", autouse=True)
def _close_cluster():
    yield
    while _CLUSTER:
        _CLUSTER.pop().close()


# --- argument lists --------------------------------------------------------------------------------------------------

def _args(param, value: str | None, d: Path) -> list[str]:
    if param.param_type_name == "argument":
        return [resolve(value, d)]
    if is_flag(param):
        return [param.opts[0]]
    return [param.opts[0], resolve(value, d)]


def _partners(name: str) -> set[str]:
    return {o for group in EXCLUSIVE if name in group for o in group if o != name}


def base_args(path: tuple[str, ...], d: Path, leave_out: set[str]) -> list[str]:
    """What the command needs: BASE, required parameters and FAST options, except ``leave_out``."""
    cmd, out = COMMANDS[path], []
    given = set()
    base = BASE.get(" ".join(path), [])
    params = {key(p): p for p in cmd.params}
    for i, word in enumerate(base):
        if word in leave_out:
            continue
        if word in params and params[word].param_type_name == "argument":
            out += _args(params[word], lookup(VALID, path, word), d)
            given.add(word)
        elif word.startswith("--"):
            out += [word, base[i + 1]]
            given.add(word)
    for name, p in params.items():
        if name in given or name in leave_out:
            continue
        fast = lookup(FAST, path, name)
        if p.required or fast is not KeyError:
            out += _args(p, lookup(VALID, path, name) if fast is KeyError else fast, d)
    return out


def valid_runs(path: tuple[str, ...], d: Path) -> list[list[str]]:
    """One run with every option valid, and one for each option that excludes another."""
    params = {key(p): p for p in COMMANDS[path].params}
    alone = [n for group in EXCLUSIVE for n in group[1:] if n in params]
    main = [n for n in params if n not in alone]
    runs = [[arg for n in main for arg in _args(params[n], lookup(VALID, path, n), d)]]
    for n in alone:
        runs.append(base_args(path, d, {n, *_partners(n)}) + _args(params[n], lookup(VALID, path, n), d))
    return runs


def invalid_run(path: tuple[str, ...], name: str, d: Path) -> list[str]:
    param = {key(p): p for p in COMMANDS[path].params}[name]
    base = base_args(path, d, {name, *_partners(name)})
    if is_flag(param):
        return [*base, f"{param.opts[0]}=x"]
    return base + _args(param, lookup(INVALID, path, name), d)


def invoke(argv: list[str]):
    res = CliRunner().invoke(app, argv)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        import traceback

        tb = "".join(traceback.format_exception(res.exception))
        pytest.fail(f"critmin {' '.join(argv)} raised:\n{tb}")
    return res


def _pid(path) -> str:
    return " ".join(path) or "critmin"


OPTIONS = [(path, key(p)) for path, cmd in COMMANDS.items() for p in cmd.params]

# --- the tests -------------------------------------------------------------------------------------------------------


def test_every_option_has_values():
    missing = [f"{' '.join(path)} {name}" for path, name in OPTIONS
               if lookup(VALID, path, name) is KeyError or (lookup(INVALID, path, name) is KeyError
                                                            and not is_flag(_param(path, name)))]
    assert not missing, ("options without a valid or an invalid value: add them to VALID / INVALID in "
                         f"tests/test_cli_contract.py: {missing}")


def _param(path, name):
    return {key(p): p for p in COMMANDS[path].params}[name]


@pytest.mark.parametrize("path", list(COMMANDS), ids=_pid)
def test_help(path):
    res = invoke([*path, "--help"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    for p in COMMANDS[path].params:
        if p.param_type_name == "option":
            assert p.opts[0] in text, f"{_pid(path)} --help does not list {p.opts[0]}"
    for markup in ("``", ":class:", ":func:", ":mod:"):
        assert markup not in res.output, f"{_pid(path)} --help shows reStructuredText markup {markup!r}"


def test_root_help_and_version():
    from critmin._version import __version__

    res = invoke(["--help"])
    assert res.exit_code == 0 and "--version" in res.output
    res = invoke(["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"critmin {__version__}"


@pytest.mark.parametrize("path", list(COMMANDS), ids=_pid)
def test_readme_example_runs(path):
    examples = [(i, ex) for i, ex in enumerate(rx.examples()) if ex.command == path]
    assert examples, f"the README has no example of critmin {_pid(path)} in its shell blocks"
    runnable = [(i, ex) for i, ex in examples if not ex.skip]
    if not runnable:
        pytest.skip(f"critmin {_pid(path)}: {examples[0][1].skip}")
    if all(rx.needs_raw(ex) for _, ex in runnable):
        need_raw()
    results = rx.results()
    for i, ex in runnable:
        if i in results:
            res = results[i]
            assert res.exit_code == 0 and res.exception is None, f"README line {ex.lineno}: {ex.text}\n{res.output}"


def _covered_by_readme(path) -> bool:
    """Every option of the command appears in one of its README examples (that example is its valid run)."""
    names = {key(p) for p in COMMANDS[path].params}
    for ex in rx.examples():
        if ex.command == path and not ex.skip:
            given = {w.split("=", 1)[0] for w in ex.argv if w.startswith("-")}
            args = [p for p in COMMANDS[path].params if p.param_type_name == "argument"]
            if names <= given | {key(p) for p in args}:
                return True
    return False


@pytest.mark.parametrize("path", list(COMMANDS), ids=_pid)
def test_valid_values_run(path, tmp_path, monkeypatch):
    if path in NOT_RUN:
        pytest.skip(f"critmin {_pid(path)}: {NOT_RUN[path]}")
    if _covered_by_readme(path):
        test_readme_example_runs(path)
        return
    monkeypatch.chdir(tmp_path)
    for argv in valid_runs(path, tmp_path):
        res = invoke([*path, *argv])
        assert res.exit_code == 0, f"critmin {_pid(path)} {' '.join(argv)}\nexit {res.exit_code}\n{res.output[-3000:]}"
        assert "Traceback" not in res.output


@pytest.mark.parametrize(("path", "name"), OPTIONS, ids=[f"{_pid(p)} {n}" for p, n in OPTIONS])
def test_invalid_value_is_one_line(path, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = invalid_run(path, name, tmp_path)
    before = sorted(os.listdir(tmp_path))
    res = invoke([*path, *argv])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    shown = f"critmin {_pid(path)} {' '.join(argv)}\n{res.output[-2000:]}"
    assert res.exit_code == 2, shown
    assert len(lines) == 1, shown
    assert lines[0].startswith("error: "), shown
    param = _param(path, name)
    mentions = [name] if param.param_type_name == "option" else [name, argv[-1]]
    assert any(m in lines[0] for m in mentions), f"the error does not name {name}: {shown}"
    assert "Traceback" not in res.output
    assert sorted(os.listdir(tmp_path)) == before, f"files written on error: {shown}"
