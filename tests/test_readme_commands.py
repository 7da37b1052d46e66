"""The README cannot drift from the program: its ``critmin`` lines run, and every command and option it names exists.

- Every ``critmin …`` line of the README's fenced shell blocks runs as written, in README order in one temporary
  folder, and exits 0 (``readme_examples``). Not run, with the reason: ``critmin serve`` (the service runs until it
  is stopped) and the lines of the block that talks to it. No line takes more than about 60 s (the brief, the
  longest, about 40 s), so none is skipped for its time.
- Every ``critmin …`` code span (the command table, the syntax lines in the text) names commands that exist and
  options those commands take, and the values it lists for an option (``--format table|csv|…``) are accepted.
- The Quickstart's two lines are the ones ``.ci/run`` runs (its last line) and the README shows.
"""

from __future__ import annotations

import re

import pytest
import readme_examples as rx
import typer
from conftest import need_raw

from critmin.cli.main import app

EXAMPLES = rx.examples()


def _id(ex: rx.Example) -> str:
    return f"line{ex.lineno}:{' '.join(ex.argv)[:60]}"


@pytest.mark.parametrize("index", range(len(EXAMPLES)), ids=[_id(e) for e in EXAMPLES])
def test_readme_line_runs(index):
    ex = EXAMPLES[index]
    if ex.skip:
        pytest.skip(f"README line {ex.lineno} ({ex.text}): {ex.skip}")
    if rx.needs_raw(ex):
        need_raw()
    res = rx.results()[index]
    tail = "\n".join(res.output.splitlines()[-15:])
    assert res.exception is None, f"README line {ex.lineno}: {ex.text}\n{res.exception!r}\n{tail}"
    assert res.exit_code == 0, f"README line {ex.lineno}: {ex.text}\nexit {res.exit_code}\n{tail}"
    assert "Traceback" not in res.output


def test_the_examples_cover_every_command():
    """Every command of the app has a README line that runs (serve: its own block, not run)."""
    covered = {ex.command for ex in EXAMPLES}
    missing = [" ".join(p) for p in leaf_commands() if p not in covered]
    assert not missing, f"commands without an example in the README's shell blocks: {missing}"


def test_quickstart_is_what_ci_runs():
    text = rx.README.read_text("utf-8")
    block = text.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [ln.strip() for ln in block.strip().splitlines() if ln.strip()]
    assert len(lines) == 2
    ci_last = [ln for ln in (rx.REPO / ".ci" / "run").read_text("utf-8").splitlines() if ln.strip()][-1]
    assert lines[1] == ci_last.strip()
    first = [ex for ex in EXAMPLES if ex.text == lines[0]]
    assert [ex.command for ex in first] == [("brief",)], "the Quickstart's first line runs the brief"


# --- the syntax of every `critmin …` code span --------------------------------------------------------------------

def leaf_commands(node=None, path=()) -> list[tuple[str, ...]]:
    node = node or typer.main.get_command(app)
    subs = getattr(node, "commands", None)
    if subs is None:
        return [path]
    return [p for name, sub in subs.items() for p in leaf_commands(sub, (*path, name))]


def _command(path: tuple[str, ...]):
    node = typer.main.get_command(app)
    for word in path:
        node = node.commands[word]
    return node


def _options(path: tuple[str, ...]) -> set[str]:
    cmd = _command(path)
    names = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}
    return names | {"--help"}


def _allowed() -> dict[str, set[str]]:
    """Values a README may list for an option, from the program's own lists."""
    from critmin.constants import STAGES
    from critmin.policy.permitting import TRACKS
    from critmin.report.export import FORMATS
    from critmin.workflows import METHODS

    return {"--format": set(FORMATS), "--method": set(METHODS), "--stage": set(STAGES), "--track": set(TRACKS)}


SPANS = sorted({" ".join(m.split()) for m in re.findall(r"`(critmin [^`]+)`", rx.README.read_text("utf-8"))})


@pytest.mark.parametrize("span", SPANS)
def test_readme_syntax_names_real_commands_and_options(span):
    text = span.replace("\\|", "|")
    words = text.split()[1:]
    pieces = [w for w in re.split(r"[\s|]+", " ".join(words)) if w]
    leaves = leaf_commands()
    if words and words[0].startswith("-"):   # critmin --version
        candidates = [()]
        options = {"--version", "--help"}
    else:
        candidates = [p for p in leaves if pieces and p[0] == pieces[0] and all(w in pieces for w in p)]
        if not candidates:   # a group named alone (`critmin stockpile`): all its commands
            candidates = [p for p in leaves if pieces and p[0] == pieces[0]]
        assert candidates, f"{span!r}: no such command"
        options = set().union(*(_options(p) for p in candidates))
    named = [w.strip("[]{}") for w in words if re.match(r"^\[?-", w)]
    for opt in named:
        opt = opt.split("=", 1)[0]
        assert opt in options, f"{span!r}: {opt} is not an option of {[' '.join(p) for p in candidates]}"
    allowed = _allowed()
    for opt, value in zip(words, [*words[1:], ""], strict=True):
        opt = opt.strip("[]")
        if not opt.startswith("--") or not re.search(r"[|{]", value):
            continue
        values = [v for v in re.split(r"[|,{}\[\]]+", value) if v and v != "…"]
        assert opt in allowed, f"{span!r}: the README lists values for {opt}; add its list to _allowed()"
        bad = [v for v in values if v not in allowed[opt]]
        assert not bad, f"{span!r}: {opt} does not accept {bad}"
