"""'Did you mean …?' for names typed by a user: commodities, importers, presets, stages, groups, tables, columns.

One small module used by the command line. :func:`close` finds the nearest known names (``difflib``); :func:`enrich`
adds the suggestion to an error message that already lists the names it accepts, so every such message gets it
without each raising site computing it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

__all__ = ["close", "did_you_mean", "enrich", "unknown"]


def close(word: str, candidates: Iterable[str], n: int = 3, cutoff: float | None = None) -> list[str]:
    """Up to ``n`` candidates nearest to ``word``, best first (case-insensitive; the candidates' own spelling).

    ``cutoff`` is difflib's similarity threshold: 0.6, or 0.5 for names of up to three letters (``g8`` → ``g7``).
    """
    by_key: dict[str, str] = {}
    for c in candidates:
        by_key.setdefault(str(c).lower(), str(c))
    key = str(word).strip().lower()
    if not key or key in by_key:
        return []
    if cutoff is None:
        cutoff = 0.5 if len(key) <= 3 else 0.6
    found = difflib.get_close_matches(key, list(by_key), n=n, cutoff=cutoff)
    if not found:
        return []
    # only the near-best: 'lithum' → 'lithium', not also 'gallium'
    score = [difflib.SequenceMatcher(None, key, m).ratio() for m in found]
    return [by_key[m] for m, r in zip(found, score, strict=True) if r >= score[0] - 0.05]


def did_you_mean(word: str, candidates: Iterable[str], n: int = 3) -> str:
    """``"did you mean 'x'?"`` (or ``'x' or 'y'``), or ``""`` when nothing is close."""
    found = close(word, candidates, n=n)
    if not found:
        return ""
    return f"did you mean {' or '.join(repr(f) for f in found)}?"


def unknown(kind: str, word: str, candidates: Iterable[str], option: str | None = None, *,
            show: int = 40) -> str:
    """One line for an unknown name, the suggestion last unless the list is long:

    ``unknown stage 'refinin' for --stage; expected one of mine, refine, metal, component; did you mean 'refine'?``
    ``unknown commodity 'lithum' for --commodity; did you mean 'lithium'? known: antimony, …``
    """
    names = list(dict.fromkeys(str(c) for c in candidates))
    hint = did_you_mean(word, names)
    head = f"unknown {kind} {word!r}" + (f" for {option}" if option else "")
    if len(names) <= SHORT:
        return f"{head}; expected one of {', '.join(names)}" + (f"; {hint}" if hint else "")
    shown = ", ".join(names[:show]) + (f", … ({len(names)} in all)" if len(names) > show else "")
    return f"{head}; {hint + ' ' if hint else ''}known: {shown}"


#: Lists up to this long are short: the suggestion goes after them, at the end of the line.
SHORT = 10


# A message that lists what it accepts: "...'word'...; known: a, b, c" (or expected one of / modelled / presets ...)
_LIST = re.compile(r"(?P<sep>[;:,(]\s*|\s)(?P<marker>known|expected one of|modelled|presets|bundled|choose from|"
                   r"allowed|available)\s*:?\s+(?P<items>[^;()\[\]]+)")
_WORD = re.compile(r"'(?P<word>[^']{1,80})'")
_FOR = re.compile(r"\bfor (?P<word>[\w.+-]+)\s*(?:[;:]|$)")


def enrich(message: str, candidates: Iterable[str] | None = None, word: str | None = None) -> str:
    """``message`` with 'did you mean …?' inserted before its list of accepted names, when one is close.

    The misspelt name is ``word``, else the first quoted name in the message (or ``for NAME;``); the accepted
    names are ``candidates``, else the list the message gives after ``known:``, ``expected one of``,
    ``modelled:``, ``presets:`` or ``bundled:``. A message that already suggests something is left alone.
    """
    if "did you mean" in message.lower():
        return message
    m_list = _LIST.search(message)
    if word is None:   # the quoted name nearest before the list ("column 'stage': unknown stage 'refin' (…")
        head = message[:m_list.start()] if m_list is not None else message
        quoted = list(_WORD.finditer(head)) or list(_FOR.finditer(head))
        if not quoted:
            return message
        word = quoted[-1].group("word")
    if candidates is None:
        if m_list is None:
            return message
        items = m_list.group("items")
        candidates = [c.strip().strip("'\"`.") for c in re.split(r",\s*|\s+or\s+", items) if c.strip()]
    candidates = list(candidates)
    hint = did_you_mean(word, candidates)
    if not hint:
        return message
    if m_list is not None and len(candidates) > SHORT:   # before a long list, so it is not lost at the end
        at = m_list.start("marker")
        return f"{message[:at]}{hint} {message[at:]}"
    return f"{message.rstrip('. ')}; {hint}"
