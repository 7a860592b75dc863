"""Every component's function called directly, in pipeline order, on one tiny synthetic dataset
(one run per module: the fixtures below are shared), then what builds on its outputs: the
MLflow round trip (register, gate, aliases, load by alias), the Feast online stores (SQLite and
the Redis at 127.0.0.1:6379 with a project of their own) and skew detection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipetest import (  # noqa: F401  (fixtures)
    REDIS_URL, delete_project_keys, fast_settings, pipeline_env, project, redis_available, steps_run, tiny_data,
)

from recsys.features import USER_FEATURES


# ---- components ----


def test_every_step_records_its_time_and_outputs(steps_run):
    for name in ("ingested", "features", "towers", "index", "ranker", "bundle", "registration", "online", "kl"):
        assert steps_run[name].metadata["seconds"] > 0, name
    assert (Path(steps_run["ingested"].path) / "train.parquet").is_file()
    for k in (2, 1, 0):
        assert (Path(steps_run["features"].path) / f"level{k}" / "users.parquet").is_file()
    assert (Path(steps_run["features"].path) / "feast" / "users.parquet").is_file()
    assert steps_run["towers"].metadata["framework"] == "pytorch"
    assert steps_run["index"].metadata["framework"] == "faiss"
    assert steps_run["ranker"].metadata["framework"] == "lightgbm"
    assert (Path(steps_run["ranker"].path) / "ranker.txt").is_file()


def test_evaluate_writes_a_loadable_bundle_with_baselines(steps_run):
    from recsys.bundle import load_bundle

    bundle = load_bundle(steps_run["bundle"].path)
    report = json.loads((bundle.path / "report.json").read_text())
    assert {"popularity", "ease", "ials", "two_tower", "two_tower+ranker"} <= set(report["models"])
    assert bundle.manifest["metrics"]["ndcg@10"] == pytest.approx(steps_run["bundle"].metadata["ndcg_at_10"])
    assert "two_tower_plus_ranker.ndcg_at_10" in steps_run["metrics"].metadata
    assert set(bundle.feature_stats) >= {"user", "ranker"}


def test_steps_match_the_in_memory_training_levels(steps_run, tiny_data):
    """The features step's level-0 tables are what recsys.train builds (same functions)."""
    from recsys.data import load_movielens
    from recsys.split import split
    from recsys.train import make_level

    ml = load_movielens(tiny_data)
    train, test = split(ml.ratings, "user-temporal")
    lv0 = make_level(ml, train, test, 20)
    saved = pd.read_parquet(Path(steps_run["features"].path) / "level0" / "users.parquet")
    pd.testing.assert_frame_equal(saved.reset_index(drop=True), lv0.user_table.reset_index(drop=True), check_dtype=False)


def test_register_makes_the_first_version_champion(steps_run):
    meta = steps_run["registration"].metadata
    assert meta["promoted"] is True and meta["alias"] == "champion"
    assert "first version" in meta["reason"]


def test_materialize_and_skew_components(steps_run):
    online = steps_run["online"].metadata
    users = pd.read_parquet(Path(steps_run["bundle"].path) / "users.parquet")
    assert online["users"] == len(users) and online["online_store"] == "sqlite"
    assert steps_run.returns["skew"] is False
    assert steps_run["kl"].metadata["flagged"] == []
    assert steps_run["kl"].metadata["missing"] == 0


def test_online_features_equal_the_training_table(steps_run, pipeline_env):
    """No training-serving skew: Feast online values == the bundle's user table, for a sample."""
    from recsys.feature_store import get_store, get_user_features

    users = pd.read_parquet(Path(steps_run["bundle"].path) / "users.parquet")
    sample = users.sample(50, random_state=0)
    online = get_user_features(get_store(), sample["user_id"].astype(int).tolist())
    for row in sample.to_dict("records"):
        got = online[int(row["user_id"])]
        assert got["recent_items"] == [int(x) for x in row["recent_items"]]
        assert got["seen_items"] == [int(x) for x in row["seen_items"]]
        assert np.array_equal(np.float32(got["genre_affinity"]), np.float32(list(row["genre_affinity"])))
        assert np.float32(got["mean_rating"]) == np.float32(row["mean_rating"])
        for k in ("gender", "age", "occupation", "n_ratings", "first_ts", "last_ts"):
            assert got[k] == row[k], k


def test_skew_check_flags_a_shifted_feature_and_passes_unshifted(steps_run):
    from recsys.steps import skew_check

    users = pd.read_parquet(Path(steps_run["bundle"].path) / "users.parquet")
    same = skew_check(steps_run["bundle"].path, users, threshold=0.1)
    assert same["skewed"] is False and same["flagged"] == []
    shifted = users.copy()
    shifted["n_ratings"] = shifted["n_ratings"] * 5 + 100
    out = skew_check(steps_run["bundle"].path, shifted, threshold=0.1)
    assert out["skewed"] is True and out["flagged"] == ["n_ratings"]
    assert out["kl"]["n_ratings"] > 0.1 > out["kl"]["age"]


# ---- MLflow registry ----


def test_metric_names_are_sanitized():
    from recsys.registry import metric_name

    assert metric_name("ndcg@10") == "ndcg_at_10"
    assert metric_name("two_tower+ranker.hr@5") == "two_tower_plus_ranker.hr_at_5"


def test_register_gate_aliases_and_load_by_alias(steps_run, pipeline_env, tmp_path):
    from recsys.bundle import load_bundle
    from recsys.registry import ModelNotFound, client, log_and_register, model_version, resolve_bundle

    bundle = Path(steps_run["bundle"].path)
    report = json.loads((bundle / "report.json").read_text())
    first = steps_run["registration"].metadata  # the register component made the first version champion
    champion_version = str(int(float(first["version"])))

    worse = log_and_register(bundle, report, min_delta=1.0)  # needs +1.0 ndcg: cannot pass
    assert not worse.promoted and "not promoted" in worse.reason
    assert str(model_version("champion").version) == champion_version
    assert str(model_version("challenger").version) == worse.version

    equal = log_and_register(bundle, report)  # same ndcg@10: >= passes
    assert equal.promoted and equal.previous_champion == champion_version
    assert str(model_version("champion").version) == equal.version

    c = client()
    run = c.get_run(equal.run_id)
    assert run.data.metrics["ndcg_at_10"] == pytest.approx(report["models"]["two_tower+ranker"]["ndcg@10"])
    assert run.data.tags["promoted"] == "true"
    assert Path(pipeline_env["RUNS_DIR"]) / "mlartifacts" in Path(equal.artifact_uri.removeprefix("file://")).parents

    local = resolve_bundle("champion")
    assert load_bundle(local).version == json.loads((bundle / "manifest.json").read_text())["version"]
    downloaded = resolve_bundle("challenger", dst=tmp_path / "dl")
    assert load_bundle(downloaded).manifest["metrics"]["ndcg@10"] == pytest.approx(worse.metric)
    with pytest.raises(ModelNotFound, match="@nope"):
        resolve_bundle("nope")


def test_gate_refuses_another_protocol():
    from types import SimpleNamespace

    from recsys.registry import gate

    champ = SimpleNamespace(version="3", tags={"protocol": "loo", "ndcg_at_10": "0.1"})
    ok, reason, _ = gate(0.5, "user-temporal", champ)
    assert not ok and "protocol" in reason
    assert gate(0.1, "loo", champ)[0] and not gate(0.09, "loo", champ)[0]
    assert gate(0.0, "loo", None)[0]


# ---- Feast ----


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


def _round_trip(store, bundle_dir) -> None:
    from recsys.feature_store import OnlineUserReader, append_user_event, get_user_features, materialize_bundle

    info = materialize_bundle(store, bundle_dir)
    users = pd.read_parquet(bundle_dir / "users.parquet")
    assert info["users"] == len(users)
    sample = users["user_id"].sample(min(40, len(users)), random_state=0).astype(int).tolist()
    online = get_user_features(store, sample + [10**9])
    reader = OnlineUserReader(store)  # the transformer's hot path: the same rows
    assert reader.get(sample + [10**9]) == online and reader.get([sample[1]]) == {sample[1]: online[sample[1]]}
    assert online.pop(10**9) is None
    _check_rows_equal(online, users)  # no skew: online == training table

    u = sample[0]
    before = online[u]
    new = append_user_event(store, u, 999_999, before["last_ts"] + 10, history_len=5)
    after = get_user_features(store, [u])[u]
    assert after == new and reader.get([u])[u] == new
    assert after["recent_items"] == (before["recent_items"] + [999_999])[-5:]
    assert after["seen_items"][-1] == 999_999 and after["n_ratings"] == before["n_ratings"] + 1
    assert after["last_ts"] == before["last_ts"] + 10

    fresh = append_user_event(store, 10**9 + 1, 7, 1234, history_len=5)
    assert get_user_features(store, [10**9 + 1])[10**9 + 1] == fresh == reader.get([10**9 + 1])[10**9 + 1]
    assert fresh["recent_items"] == [7] and fresh["seen_items"] == [7] and fresh["n_ratings"] == 1

    items = store.get_online_features(features=["item_features:popularity", "item_features:title"],
                                      entity_rows=[{"item_id": int(i)} for i in pd.read_parquet(bundle_dir / "items.parquet")["item_id"][:3]]).to_dict()
    assert all(p is not None for p in items["popularity"])


def test_definitions_match_the_user_table():
    from recsys.feature_store import _load_definitions_module, resolve_repo_path

    module = _load_definitions_module(resolve_repo_path())
    assert tuple(module.USER_SCHEMA) == USER_FEATURES


def test_redis_connection_string():
    from recsys.feature_store import FeatureStoreError, redis_connection_string

    assert redis_connection_string("redis://127.0.0.1:6379/2") == "127.0.0.1:6379,db=2"
    assert redis_connection_string("redis://:s3cret@cache:6380") == "cache:6380,db=0,password=s3cret"
    assert redis_connection_string("redis://h:1/0", 0.5) == "h:1,db=0,socket_timeout=0.5,socket_connect_timeout=0.5"
    with pytest.raises(FeatureStoreError):
        redis_connection_string("http://x")


def test_sqlite_online_store(steps_run, project, tmp_path):
    bundle_dir = Path(steps_run["bundle"].path)
    from recsys.feature_store import get_store

    store = get_store(project=project, redis_url="", settings=fast_settings(runs_dir=tmp_path))
    assert store.config.online_store.type == "sqlite"
    assert str(tmp_path) in store.config.online_store.path
    _round_trip(store, bundle_dir)


@pytest.mark.integration
@pytest.mark.skipif(not redis_available(), reason="no Redis on 127.0.0.1:6379")
def test_redis_online_store(steps_run, project, tmp_path):
    bundle_dir = Path(steps_run["bundle"].path)
    from recsys.feature_store import get_store

    store = get_store(project=project, redis_url=REDIS_URL, settings=fast_settings(runs_dir=tmp_path))
    assert store.config.online_store.type == "redis"
    try:
        _round_trip(store, bundle_dir)
    finally:
        delete_project_keys(project)
    assert delete_project_keys(project) == 0
