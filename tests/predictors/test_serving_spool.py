"""The transformer's event spool: fsynced lines, bounded, drained in order into the log, kept when
the log fails mid-drain."""

from __future__ import annotations

import pytest

from predictors.spool import EventSpool, SpoolFull
from recsys.online.events import Event


def ev(i: int) -> Event:
    return Event(event_id=f"s{i}", user_id=1, item_id=i, timestamp=1_700_000_000 + i)


def test_spool_drains_in_order_and_refuses_when_full(tmp_path):
    spool = EventSpool(tmp_path / "spool" / "events.jsonl", max_bytes=2_000)
    for i in range(5):
        spool.append(ev(i))
    assert spool.depth() == 5
    logged = []
    assert spool.drain(logged.append) == 5 and [e.event_id for e in logged] == [f"s{i}" for i in range(5)]
    assert spool.depth() == 0 and spool.drain(logged.append) == 0
    with pytest.raises(SpoolFull, match="SPOOL_MAX_BYTES"):
        for i in range(100):
            spool.append(ev(i))
    assert 0 < spool.depth() < 100


def test_a_failed_drain_keeps_every_event_and_new_ones_still_spool(tmp_path):
    spool = EventSpool(tmp_path / "events.jsonl", max_bytes=1 << 20)
    for i in range(3):
        spool.append(ev(i))
    calls = []

    def flaky(e):
        calls.append(e.event_id)
        if len(calls) == 2:
            raise ConnectionError("log down again")

    with pytest.raises(ConnectionError):
        spool.drain(flaky)
    spool.append(ev(9))  # appends go on while a drain is pending
    assert spool.depth() == 4
    assert EventSpool(tmp_path / "events.jsonl", max_bytes=1 << 20).depth() == 4  # survives a restart
    logged = []
    assert spool.drain(logged.append) == 3  # the interrupted batch first (s0 again: the consumer's claim dedups)
    assert spool.drain(logged.append) == 1
    assert [e.event_id for e in logged] == ["s0", "s1", "s2", "s9"] and spool.depth() == 0


def test_a_torn_last_line_is_ended_on_open_and_set_aside_on_replay(tmp_path):
    """A process killed mid-append leaves half a line (never acknowledged: its fsync had not
    returned). The next event must not be glued to it, and the replay must not fail on it."""
    path = tmp_path / "events.jsonl"
    spool = EventSpool(path, max_bytes=1 << 20)
    spool.append(ev(0))
    with path.open("ab") as fh:
        fh.write(b'{"event_id":"torn","us')
    spool = EventSpool(path, max_bytes=1 << 20)  # the restarted transformer
    spool.append(ev(1))
    logged = []
    assert spool.drain(logged.append) == 2 and [e.event_id for e in logged] == ["s0", "s1"]
    assert spool.depth() == 0 and spool.rejected.read_bytes() == b'{"event_id":"torn","us\n'


def test_the_drainer_replays_on_its_own_thread_retrying_until_the_log_answers(tmp_path, monkeypatch):
    import time

    from predictors import spool as spool_module
    from predictors.spool import SpoolDrainer

    monkeypatch.setattr(spool_module, "DRAIN_EVERY_SECONDS", 0.01)
    spool = EventSpool(tmp_path / "events.jsonl", max_bytes=1 << 20)
    for i in range(3):
        spool.append(ev(i))
    logged, depths = [], []

    def log_down_twice(e):
        if len(depths) < 2:
            raise ConnectionError("log down")
        logged.append(e.event_id)

    drainer = SpoolDrainer(spool, log_down_twice, on_depth=depths.append)
    drainer.start()
    drainer.start()  # one replay at a time
    end = time.monotonic() + 10
    while drainer.running and time.monotonic() < end:
        time.sleep(0.01)
    assert not drainer.running and spool.depth() == 0 and logged == ["s0", "s1", "s2"]
    assert depths == [3, 3, 0]
    spool.append(ev(7))  # a new spooled event starts a new replay
    drainer.start()
    while drainer.running and time.monotonic() < end:
        time.sleep(0.01)
    assert logged[-1] == "s7" and spool.depth() == 0
