"""The ``critmin …`` command lines of the README: found, parsed and run once per test session.

Shared by ``test_readme_commands.py`` (every line runs) and ``test_cli_contract.py`` (every command has an example
that runs). The lines of the README's fenced shell blocks run in order, in one temporary folder, through Typer's
CliRunner; ``mkdir DIR`` steps are done here, set-up steps of the Quickstart (``python3 -m venv``, ``pip``,
``pytest``) are not commands of critmin and are not run. Paths that the README gives relative to the clone's root
(``docs/…``, ``tests/…``, ``../shared/…``) are made absolute.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RAW = REPO.parent / "shared" / "data"

#: Lines not run, each with the reason. Nothing else is skipped: a line that takes more than ~60 s would be
#: listed here with its time, and none does (the longest, the brief, takes about 40 s).
SKIP = {
    "serve": "starts the marketplace service, which runs until it is stopped",
    "dashboard": "starts the dashboard's web server, which runs until it is stopped",
    "service session": "talks to the service started by `critmin serve` in the same block",
}
#: Prefixes of arguments that are paths relative to the clone's root.
REPO_PATHS = ("docs/", "tests/", "src/", "../shared/")
#: Steps of the Quickstart that set up Python, not critmin.
SETUP = ("python3", "python", ".", "source", "pip", "pytest")


@dataclass
class Example:
    """One ``critmin`` command of a README line (a line may hold several steps joined by ``&&``)."""

    lineno: int
    text: str                 # the whole README line
    argv: list[str]           # the arguments after ``critmin``
    mkdirs: list[str] = field(default_factory=list)   # ``mkdir`` steps before it on the same line
    skip: str | None = None   # why it is not run
    block: int = 0            # which fenced block

    @property
    def command(self) -> tuple[str, ...]:
        """The command path (``("stockpile", "plan")``), from the app's own tree."""
        return command_path(self.argv)


@dataclass
class Outcome:
    exit_code: int
    output: str
    seconds: float
    exception: BaseException | None = None


def fenced_blocks(text: str) -> list[tuple[int, str, list[tuple[int, str]]]]:
    """``(first line number, language, [(line number, line), …])`` of every fenced block."""
    blocks, current, lang, start = [], None, "", 0
    for n, line in enumerate(text.splitlines(), start=1):
        fence = re.match(r"^\s*```\s*([\w+-]*)", line)
        if fence and current is None:
            current, lang, start = [], fence.group(1).lower(), n
        elif fence:
            blocks.append((start, lang, current))
            current = None
        elif current is not None:
            current.append((n, line))
    return blocks


def command_path(argv: list[str]) -> tuple[str, ...]:
    """The longest prefix of ``argv`` naming a group and command of the app (``()`` for root options)."""
    import typer

    from critmin.cli.main import app

    node, path = typer.main.get_command(app), []
    for word in argv:
        sub = getattr(node, "commands", {}).get(word)
        if sub is None:
            break
        node, path = sub, [*path, word]
    return tuple(path)


def _absolute(arg: str) -> str:
    for prefix in REPO_PATHS:
        if arg.startswith(prefix):
            return str((REPO / arg).resolve())
        if arg.startswith("-") and "=" in arg and arg.split("=", 1)[1].startswith(prefix):
            key, value = arg.split("=", 1)
            return f"{key}={(REPO / value).resolve()}"
    return arg


def examples(text: str | None = None) -> list[Example]:
    """Every ``critmin`` command in the README's fenced shell blocks, in order."""
    text = README.read_text("utf-8") if text is None else text
    found: list[Example] = []
    for b, (_, lang, lines) in enumerate(fenced_blocks(text)):
        if lang not in ("", "bash", "sh", "shell", "console"):
            continue
        session = any(re.match(r"^\s*\$?\s*critmin serve\b", ln) for _, ln in lines)
        for n, line in lines:
            words = shlex.split(line, comments=True) if "critmin" in line else []
            if "critmin" not in words:
                continue
            steps: list[list[str]] = [[]]
            for w in words:
                if w in ("&&", ";"):
                    steps.append([])
                else:
                    steps[-1].append(w)
            mkdirs: list[str] = []
            for step in steps:
                if not step:
                    continue
                if step[0] == "$":
                    step = step[1:]
                if step[0] == "mkdir":
                    mkdirs += [w for w in step[1:] if not w.startswith("-")]
                elif step[0] == "critmin":
                    argv = [_absolute(w) for w in step[1:] if w != "&"]
                    ex = Example(n, line.strip(), argv, list(mkdirs), block=b)
                    if argv[:1] in (["serve"], ["dashboard"]):
                        ex.skip = SKIP[argv[0]]
                    elif session:
                        ex.skip = SKIP["service session"]
                    found.append(ex)
                    mkdirs = []
                elif step[0] in SETUP:
                    continue
    return found


def run_argv(argv: list[str], cwd: Path) -> Outcome:
    """Run ``critmin argv`` in ``cwd`` through the CliRunner (in this process)."""
    from typer.testing import CliRunner

    from critmin.cli.main import app

    old = os.getcwd()
    os.chdir(cwd)
    try:
        t0 = time.perf_counter()
        res = CliRunner().invoke(app, argv)
        seconds = time.perf_counter() - t0
    finally:
        os.chdir(old)
    exc = res.exception if res.exception is not None and not isinstance(res.exception, SystemExit) else None
    return Outcome(res.exit_code, res.output, seconds, exc)


@functools.cache
def results() -> dict[int, Outcome]:
    """Run every example once, in README order, in one temporary folder: index in :func:`examples` → outcome.

    Examples that are skipped, or that need the raw public data folder when it is absent, have no outcome.
    """
    folder = Path(tempfile.mkdtemp(prefix="critmin-readme-"))
    out: dict[int, Outcome] = {}
    for i, ex in enumerate(examples()):
        if ex.skip or (needs_raw(ex) and not RAW.is_dir()):
            continue
        for d in ex.mkdirs:
            (folder / d).mkdir(parents=True, exist_ok=True)
        out[i] = run_argv(ex.argv, folder)
    return out


def needs_raw(ex: Example) -> bool:
    """The example reads the raw public data folder beside the clone."""
    return any(a.startswith(str(RAW.resolve())) for a in ex.argv)
