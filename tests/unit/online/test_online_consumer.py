"""The stream consumer on the embedded stack (SQLite event log, Feast's SQLite online store):
events archived, applied once to the online rows, trending counts written; a batch delivered
again changes nothing."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from recsys.online.archive import read_archive
from recsys.online.consumer import Consumer
from recsys.online.event_log import SqliteEventLog
from recsys.online.events import Event


@pytest.fixture
def store(local_state, bundle_dir):
    from recsys.online.feature_store import get_store, materialize_bundle

    s = get_store()
    materialize_bundle(s, bundle_dir)
    return s


def test_consumer_archives_applies_once_and_counts_trending(store, bundle_dir, local_state):
    from recsys.online.trending_store import TrendingReader
    from recsys.online.user_rows import get_user_features

    users = pd.read_parquet(bundle_dir / "users.parquet")
    known = int(users["user_id"].iloc[0])
    items = pd.read_parquet(bundle_dir / "items.parquet")["item_id"].astype(int).tolist()
    before = get_user_features(store, [known])[known]
    now = int(time.time())
    events = [Event(event_id="c1", user_id=known, item_id=items[0], event_type="click", timestamp=now - 30),
              Event(event_id="c2", user_id=known, item_id=items[1], event_type="rating", value=5, timestamp=now - 20),
              Event(event_id="c3", user_id=known, item_id=items[2], event_type="skip", timestamp=now - 10),
              Event(event_id="c4", user_id=10**9, item_id=items[0], event_type="purchase", timestamp=now - 5)]
    log = SqliteEventLog(local_state / "events" / "log.db")
    for e in events:
        log.append(e)
    consumer = Consumer(log, store, local_state / "archive", history_len=20)
    assert consumer.run_once(block_ms=100) == 4 and log.lag() == 0
    assert read_archive(local_state / "archive")["event_id"].tolist() == ["c1", "c2", "c3", "c4"]
    rows = get_user_features(store, [known, 10**9])
    after, new = rows[known], rows[10**9]
    assert after["recent_items"][-2:] == [items[0], items[1]] and items[2] not in after["recent_items"]
    assert items[2] in after["seen_items"]  # skipped: never recommended again, not history
    assert after["n_ratings"] == before["n_ratings"] + 2
    assert new["recent_items"] == [items[0]] and new["n_ratings"] == 1
    trend = TrendingReader(store, items[:3]).read()
    assert trend[:, 0].tolist() == [2, 1, 0] and trend[:, 1].tolist() == [2, 1, 0]  # a skip is no interest
    assert consumer._apply(events) == 0  # delivered again: claimed already, nothing applied twice
    assert get_user_features(store, [known])[known] == after


class FailingOnce:
    """The Feast store, except that its first ``write_to_online_store`` call fails (the online
    store unreachable for a moment)."""

    def __init__(self, store):
        self.store, self.failed = store, False

    def write_to_online_store(self, *args, **kwargs):
        if not self.failed:
            self.failed = True
            raise ConnectionError("online store unreachable")
        return self.store.write_to_online_store(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.store, name)


class FlakyCache:
    """A result cache (a sync Redis client's pipelines) whose first drop fails; records the keys dropped."""

    def __init__(self):
        self.calls, self.dropped = 0, []

    def pipeline(self, transaction=True):
        self.queued = []
        return self

    def delete(self, *keys):
        self.queued.extend(keys)

    def hset(self, *args):
        pass

    def expire(self, *args):
        pass

    def execute(self):
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("cache unreachable")
        self.dropped.extend(self.queued)


def test_a_failed_row_write_releases_the_claims_so_the_retried_batch_applies_the_events(store, bundle_dir,
                                                                                       local_state):
    from recsys.online.user_rows import get_user_features

    known = int(pd.read_parquet(bundle_dir / "users.parquet")["user_id"].iloc[1])
    items = pd.read_parquet(bundle_dir / "items.parquet")["item_id"].astype(int).tolist()
    before = get_user_features(store, [known])[known]
    now = int(time.time())
    events = [Event(event_id="f1", user_id=known, item_id=items[3], event_type="rating", value=4, timestamp=now - 9),
              Event(event_id="f2", user_id=known, item_id=items[4], event_type="click", timestamp=now - 8)]
    log = SqliteEventLog(local_state / "events" / "log.db")
    for e in events:
        log.append(e)
    consumer = Consumer(log, FailingOnce(store), local_state / "archive", history_len=20)
    with pytest.raises(ConnectionError):
        consumer.run_once(block_ms=100)
    assert log.lag() == 2 and get_user_features(store, [known])[known] == before  # nothing acknowledged or applied
    assert consumer.run_once(block_ms=100) == 2 and log.lag() == 0  # the batch delivered again
    after = get_user_features(store, [known])[known]
    assert after["recent_items"][-2:] == [items[3], items[4]] and after["n_ratings"] == before["n_ratings"] + 2
    assert consumer._apply(events) == 0 and get_user_features(store, [known])[known] == after  # still once


def test_a_failed_cache_drop_is_retried_without_applying_the_events_twice(store, bundle_dir, local_state):
    from recsys.online.events import result_cache_key
    from recsys.online.user_rows import get_user_features

    known = int(pd.read_parquet(bundle_dir / "users.parquet")["user_id"].iloc[2])
    item = int(pd.read_parquet(bundle_dir / "items.parquet")["item_id"].iloc[5])
    before = get_user_features(store, [known])[known]
    log = SqliteEventLog(local_state / "events" / "log.db")
    log.append(Event(event_id="k1", user_id=known, item_id=item, event_type="rating", value=5,
                     timestamp=int(time.time()) - 5))
    cache = FlakyCache()
    consumer = Consumer(log, store, local_state / "archive", history_len=20, cache=cache, cache_prefix="p")
    with pytest.raises(ConnectionError):
        consumer.run_once(block_ms=100)  # the row is written, dropping the cached answers fails
    assert consumer.run_once(block_ms=100) == 1 and log.lag() == 0
    assert cache.dropped == [result_cache_key("p", known)]  # dropped on the redelivery
    assert get_user_features(store, [known])[known]["n_ratings"] == before["n_ratings"] + 1  # applied once


def test_claims_the_log_could_not_release_are_released_before_the_next_batch(store, bundle_dir, local_state):
    """The row write fails and the log is down as well (one Redis for both): the claims are
    released before the redelivered batch is claimed again, so it is applied."""
    from recsys.online.user_rows import get_user_features

    class ReleaseFailsOnce(SqliteEventLog):
        failed = False

        def release(self, events):
            if not self.failed:
                self.failed = True
                raise ConnectionError("log unreachable")
            super().release(events)

    known = int(pd.read_parquet(bundle_dir / "users.parquet")["user_id"].iloc[3])
    item = int(pd.read_parquet(bundle_dir / "items.parquet")["item_id"].iloc[6])
    before = get_user_features(store, [known])[known]
    log = ReleaseFailsOnce(local_state / "events" / "log.db")
    log.append(Event(event_id="r1", user_id=known, item_id=item, event_type="click", timestamp=int(time.time()) - 3))
    consumer = Consumer(log, FailingOnce(store), local_state / "archive", history_len=20)
    with pytest.raises(ConnectionError, match="online store unreachable"):
        consumer.run_once(block_ms=100)
    assert consumer.run_once(block_ms=100) == 1 and log.lag() == 0
    after = get_user_features(store, [known])[known]
    assert after["recent_items"][-1] == item and after["n_ratings"] == before["n_ratings"] + 1


def test_a_batch_whose_acknowledgement_failed_is_not_archived_or_counted_again(store, bundle_dir, local_state):
    """The log goes down between the archive write and the acknowledgement: the batch comes back
    as this consumer's pending entries, and is applied, archived and counted in trending once."""
    from recsys.online.archive import raw_rows
    from recsys.online.trending_store import TrendingReader

    class AckFailsOnce(SqliteEventLog):
        failed = False

        def ack(self, ids):
            if not self.failed:
                self.failed = True
                raise ConnectionError("log unreachable")
            super().ack(ids)

    known = int(pd.read_parquet(bundle_dir / "users.parquet")["user_id"].iloc[4])
    item = int(pd.read_parquet(bundle_dir / "items.parquet")["item_id"].iloc[7])
    log = AckFailsOnce(local_state / "events" / "log.db")
    now = int(time.time())
    for i in range(3):
        log.append(Event(event_id=f"a{i}", user_id=known, item_id=item, event_type="click", timestamp=now - 9 + i))
    consumer = Consumer(log, store, local_state / "archive", history_len=20)
    with pytest.raises(ConnectionError):
        consumer.run_once(block_ms=100)
    assert log.lag() == 3  # nothing acknowledged: delivered again
    assert consumer.run_once(block_ms=100) == 3 and log.lag() == 0
    assert raw_rows(local_state / "archive") == 3  # one row each, not two
    assert read_archive(local_state / "archive")["event_id"].tolist() == ["a0", "a1", "a2"]
    assert TrendingReader(store, [item]).read()[0].tolist() == [3, 3]  # counted once
    assert not consumer._archived and not consumer._counted  # forgotten once acknowledged
