"""The Feast online stores (embedded SQLite, and the Redis at 127.0.0.1:6379 with a project of
their own): materialization of a bundle, reads equal to the training table, events applied by the
stream consumer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.features.users import USER_FEATURES
from recsys.online.consumer import Consumer
from recsys.online.event_log import SqliteEventLog
from recsys.online.events import Event

from testkit import REDIS_URL, delete_project_keys, fast_settings, project, redis_available  # noqa: F401 (fixture)


def _check_rows_equal(online: dict, table: pd.DataFrame) -> None:
    by_id = {int(r["user_id"]): r for r in table.to_dict("records")}
    for u, row in online.items():
        assert row is not None, u
        assert set(row) == {"user_id", *USER_FEATURES}
        exp = by_id[u]
        for name in USER_FEATURES:
            got, want = row[name], exp[name]
            if name in ("recent_items", "seen_items"):
                assert got == [int(x) for x in want], (u, name)
            elif name == "genre_affinity":
                assert np.array_equal(np.float32(got), np.float32(list(want))), (u, name)
            elif name == "mean_rating":
                assert np.float32(got) == np.float32(want), (u, name)
            else:
                assert got == want, (u, name)


def _round_trip(store, bundle_dir, tmp_path) -> None:
    from recsys.online.feature_store import materialize_bundle
    from recsys.online.user_rows import OnlineUserReader, get_user_features

    info = materialize_bundle(store, bundle_dir)
    users = pd.read_parquet(bundle_dir / "users.parquet")
    assert info["users"] == len(users)
    sample = users["user_id"].sample(min(40, len(users)), random_state=0).astype(int).tolist()
    online = get_user_features(store, sample + [10**9])
    reader = OnlineUserReader(store)  # the transformer's hot path: the same rows
    assert reader.get(sample + [10**9]) == online and reader.get([sample[1]]) == {sample[1]: online[sample[1]]}
    assert online.pop(10**9) is None
    _check_rows_equal(online, users)  # no skew: online == training table

    consumer = Consumer(SqliteEventLog(tmp_path / "log.db"), store, tmp_path / "archive", history_len=5)
    u = sample[0]
    before = online[u]
    assert consumer._apply([Event(event_id="rt-1", user_id=u, item_id=999_999, timestamp=before["last_ts"] + 10)]) == 1
    after = get_user_features(store, [u])[u]
    assert reader.get([u])[u] == after
    assert after["recent_items"] == (before["recent_items"] + [999_999])[-5:]
    assert after["seen_items"][-1] == 999_999 and after["n_ratings"] == before["n_ratings"] + 1
    assert after["last_ts"] == before["last_ts"] + 10

    assert consumer._apply([Event(event_id="rt-2", user_id=10**9 + 1, item_id=7, timestamp=1234)]) == 1
    fresh = get_user_features(store, [10**9 + 1])[10**9 + 1]
    assert fresh == reader.get([10**9 + 1])[10**9 + 1]
    assert fresh["recent_items"] == [7] and fresh["seen_items"] == [7] and fresh["n_ratings"] == 1

    item_ids = pd.read_parquet(bundle_dir / "items.parquet")["item_id"][:3]
    items = store.get_online_features(features=["item_features:popularity", "item_features:title"],
                                      entity_rows=[{"item_id": int(i)} for i in item_ids]).to_dict()
    assert all(p is not None for p in items["popularity"])


def test_definitions_match_the_user_table():
    from recsys.online.feature_store import _load_definitions_module, resolve_repo_path

    module = _load_definitions_module(resolve_repo_path())
    assert tuple(module.USER_SCHEMA) == USER_FEATURES


def test_redis_connection_string():
    from recsys.online.feature_store import FeatureStoreError, redis_connection_string

    assert redis_connection_string("redis://127.0.0.1:6379/2") == "127.0.0.1:6379,db=2"
    assert redis_connection_string("redis://:s3cret@cache:6380") == "cache:6380,db=0,password=s3cret"
    assert redis_connection_string("redis://h:1/0", 0.5) == "h:1,db=0,socket_timeout=0.5,socket_connect_timeout=0.5"
    with pytest.raises(FeatureStoreError):
        redis_connection_string("http://x")


def test_sqlite_online_store(bundle_dir, project, tmp_path):
    from recsys.online.feature_store import get_store

    store = get_store(project=project, redis_url="", settings=fast_settings(runs_dir=tmp_path))
    assert store.config.online_store.type == "sqlite"
    assert str(tmp_path) in store.config.online_store.path
    _round_trip(store, bundle_dir, tmp_path)


@pytest.mark.integration
@pytest.mark.skipif(not redis_available(), reason="no Redis on 127.0.0.1:6379")
def test_redis_online_store(bundle_dir, project, tmp_path):
    from recsys.online.feature_store import get_store

    store = get_store(project=project, redis_url=REDIS_URL, settings=fast_settings(runs_dir=tmp_path))
    assert store.config.online_store.type == "redis"
    try:
        _round_trip(store, bundle_dir, tmp_path)
    finally:
        delete_project_keys(project)
    assert delete_project_keys(project) == 0
