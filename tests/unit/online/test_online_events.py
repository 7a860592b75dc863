"""The event contract, the event logs (embedded SQLite and a Redis Stream on the machine's Redis,
own key), the archive and the spool: durable, idempotent, bounded."""

from __future__ import annotations

import uuid

import pytest

from recsys.online.archive import raw_rows, read_archive, write_batch
from recsys.online.event_log import RedisStreamLog, SqliteEventLog
from recsys.online.events import EVENT_COLUMNS, Event, EventError, parse_event_fields

from testkit import REDIS_URL, redis_available

NOW = 1_700_000_000


def ev(i: int, **kw) -> Event:
    return Event(**{"event_id": f"e{i}", "user_id": 1 + i % 3, "item_id": 10 + i, "timestamp": NOW + i, **kw})


@pytest.mark.parametrize("fields,message", [
    ({"item_id": 1, "timestamp": NOW}, "user_id: Field required"),
    ({"user_id": -1, "item_id": 1, "timestamp": NOW}, "user_id: Input should be greater than or equal to 0"),
    ({"user_id": 1, "item_id": 1, "timestamp": NOW, "event_type": "like"}, "event_type: Input should be"),
    ({"user_id": 1, "item_id": 1, "timestamp": NOW, "event_type": "rating"}, "value: required with event_type rating"),
    ({"user_id": 1, "item_id": 1, "timestamp": NOW, "event_type": "rating", "value": 7}, "value: Input should be"),
    ({"user_id": 1, "item_id": 1, "timestamp": NOW, "event_type": "watch"}, "progress: required with event_type watch"),
    ({"user_id": 1, "item_id": 1, "timestamp": NOW, "value": 3}, "value: only with event_type rating"),
    ({"user_id": 1, "item_id": 1, "timestamp": NOW, "event_id": "a b"}, "event_id: String should match"),
    ({"user_id": 1, "item_id": 1, "timestamp": NOW, "position": -2}, "position: Input should be greater"),
    ({"user_id": 1, "item_id": 1, "timestamp": NOW, "colour": "red"}, "colour: Extra inputs are not permitted"),
])
def test_bad_events_name_the_field(fields, message):
    with pytest.raises(EventError) as err:
        parse_event_fields(fields)
    assert str(err.value).startswith(message), str(err.value)


def test_a_good_event_gets_an_id_and_round_trips():
    e = parse_event_fields({"user_id": 1, "item_id": 2, "timestamp": NOW, "event_type": "watch", "progress": 0.5,
                            "position": 3, "request_id": "req-1", "variant": "challenger", "session_id": "s1"})
    assert len(e.event_id) == 32 and Event.model_validate_json(e.model_dump_json()) == e
    assert tuple(e.row()) == EVENT_COLUMNS


def _exercise(log):
    events = [ev(i) for i in range(5)]
    ids = [log.append(e) for e in events]
    assert len(set(ids)) == 5
    got = log.read("c1", count=3, block_ms=100)
    assert [e for _, e in got] == events[:3]
    log.ack([got[0][0]])  # the other two stay pending: delivered again
    again = log.read("c1", count=10, block_ms=100)
    assert [e.event_id for _, e in again][:2] in (["e1", "e2"], ["e1", "e2"])
    log.ack([i for i, _ in again])
    rest = log.read("c1", count=10, block_ms=100)
    log.ack([i for i, _ in rest])
    assert {e.event_id for _, e in again + rest} >= {"e3", "e4"}
    assert log.read("c1", count=10, block_ms=50) == [] and log.lag() == 0
    assert log.claim([events[0], events[1]]) == [True, True]
    assert log.claim([events[1], events[2]]) == [False, True]  # applied once, whatever the deliveries
    log.release([events[2]])  # its application failed: the next delivery applies it
    assert log.claim([events[2], events[3], events[3]]) == [True, True, False]
    assert log.claim([]) == []
    assert [e.event_id for e in log.entries()][:5] == [f"e{i}" for i in range(5)]


def test_sqlite_log(tmp_path):
    log = SqliteEventLog(tmp_path / "log.db")
    _exercise(log)
    assert log.append(ev(0)) and sum(1 for _ in log.entries()) == 5  # the same event_id is not logged twice


@pytest.mark.integration
@pytest.mark.skipif(not redis_available(), reason="no Redis on 127.0.0.1:6379")
def test_redis_stream_log():
    stream = f"test-events-{uuid.uuid4().hex[:8]}"
    log = RedisStreamLog(REDIS_URL, stream=stream)
    try:
        _exercise(log)
    finally:
        keys = list(log.client.scan_iter(f"{stream}*"))
        log.client.delete(*keys)


def test_archive_is_partitioned_by_day_and_read_once_per_event(tmp_path):
    day = 86_400
    events = [ev(0), ev(1, timestamp=NOW + day), ev(2, event_type="rating", value=4.0)]
    write_batch(events, tmp_path)
    write_batch(events[:2], tmp_path)  # a batch delivered twice (its acknowledgement failed)
    assert len(list(tmp_path.glob("date=*"))) == 2 and raw_rows(tmp_path) == 5
    df = read_archive(tmp_path)
    assert df["event_id"].tolist() == ["e0", "e2", "e1"] and df["value"].tolist()[1] == 4.0
    assert read_archive(tmp_path, until=NOW + day)["event_id"].tolist() == ["e0", "e2"]
    assert read_archive(tmp_path / "empty").empty
