"""The load generator's own logic (no server): its request sequence and its summary of a run."""

from __future__ import annotations

import random

import pytest

from critmin.server import loadgen as L


def _requests(prerender: int) -> L._Requests:
    client = L.Client("p-1", "buyer", "secret-token")
    return L._Requests(client, "127.0.0.1", 8000, random.Random("1/p-1"), "k-", 1, prerender)


def test_requests_are_the_same_sequence_however_far_ahead_they_are_rendered():
    ahead, late = _requests(40), _requests(3)  # the second runs out and refills in small steps inside the run
    got_ahead = [ahead.next() for _ in range(40)]
    got_late = [late.next() for _ in range(40)]
    assert [k for k, _, _ in got_late] == [f"k-p-1-{i}" for i in range(40)]
    assert got_late == got_ahead


def test_a_client_out_of_prerendered_requests_renders_only_a_few_at_a_time():
    r = _requests(5)
    for _ in range(5):
        r.next()
    assert r.made == 5
    r.next()
    assert r.made == 5 + L._Requests.REFILL and len(r.ahead) == L._Requests.REFILL - 1


def test_pauses_count_the_gaps_without_an_answer():
    # answers every 5 ms, then nothing for 40 ms, then every 5 ms, then 26 ms
    times = [i * 0.005 for i in range(10)] + [0.085 + i * 0.005 for i in range(4)] + [0.126]
    n, longest = L.pauses(times)
    assert n == 2
    assert longest == pytest.approx(40.0)
    assert L.pauses(times, longer_than_ms=30) == (1, pytest.approx(40.0))
    assert L.pauses([]) == (0, 0.0) and L.pauses([1.0]) == (0, 0.0)


def test_summarize_reports_rate_percentiles_and_pauses():
    res = L.LoadResult(started=0.0, finished=1.0)
    for i in range(100):  # sent 10 ms before each answer; answer 50 comes after a 100 ms pause
        done = 0.010 + 0.005 * i + (0.1 if i >= 50 else 0.0)
        res.records.append(L.Record("p", f"k{i}", "buy", "1", done - 0.010, done, 201, 1))
    res.records.append(L.Record("p", "k-bad", "buy", "1", 0.5, 0.6, 409, 1))
    out = L.summarize(res)
    assert out["acked"] == 100 and out["statuses"] == {201: 100, 409: 1}
    assert out["rate"] == pytest.approx(100.0)
    assert out["p50_ms"] == pytest.approx(10.0)
    assert out["pauses"] == 1 and out["longest_pause_ms"] == pytest.approx(105.0, abs=0.01)
