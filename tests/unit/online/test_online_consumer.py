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
