"""Every component's function called directly, in pipeline order, on one tiny synthetic dataset
(one run per module: the fixtures are shared), and what the steps write: the same levels as the
in-memory run, a loadable bundle, a registration, the online store and the skew check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.constants import PRIMARY_MODEL

from pipetest import pipeline_env, steps_run, tiny_data  # noqa: F401  (fixtures)


def test_every_step_records_its_time_and_outputs(steps_run):
    for name in ("ingested", "features", "towers", "index", "ranker", "report", "bundle", "registration", "online",
                 "kl"):
        assert steps_run[name].metadata["seconds"] > 0, name
    assert (Path(steps_run["ingested"].path) / "train.parquet").is_file()
    for k in (2, 1, 0):
        assert (Path(steps_run["features"].path) / f"level{k}" / "users.parquet").is_file()
    assert (Path(steps_run["features"].path) / "feast" / "users.parquet").is_file()
    assert steps_run["towers"].metadata["framework"] == "pytorch"
    assert steps_run["index"].metadata["framework"] == "faiss"
    assert steps_run["ranker"].metadata["framework"] == "lightgbm"
    assert (Path(steps_run["ranker"].path) / "ranker.txt").is_file()


def test_evaluate_reports_every_model_and_package_writes_a_loadable_bundle(steps_run):
    from recsys.artifacts.bundle import load_bundle

    report = json.loads((Path(steps_run["report"].path) / "report.json").read_text())
    assert {"popularity", "ease", "ials", "two_tower", PRIMARY_MODEL} <= set(report["models"])
    assert "two_tower_plus_ranker.ndcg_at_10" in steps_run["metrics"].metadata
    bundle = load_bundle(steps_run["bundle"].path)
    assert bundle.manifest["metrics"] == report["models"][PRIMARY_MODEL]
    assert bundle.manifest["metrics"]["ndcg@10"] == pytest.approx(steps_run["bundle"].metadata["ndcg_at_10"])
    assert json.loads((bundle.path / "report.json").read_text())["version"] == bundle.version
    assert set(bundle.feature_stats) >= {"user", "ranker"}
    assert bundle.manifest["settings"]["history_len"] == 20 and bundle.manifest["settings"]["embedding_dim"] == 32


def test_steps_train_what_the_in_memory_run_trains(steps_run, tiny_data, pipeline_env):
    """The pipeline steps and recsys.training.run compose the same stages: same levels, same
    towers, same ranker, same answers."""
    from recsys.artifacts.bundle import load_bundle
    from recsys.config import Settings
    from recsys.data.movielens import load_movielens
    from recsys.training.run import train_models

    tm = train_models(load_movielens(tiny_data), "user-temporal", Settings(), progress=False)
    saved = pd.read_parquet(Path(steps_run["features"].path) / "level0" / "users.parquet")
    pd.testing.assert_frame_equal(saved.reset_index(drop=True), tm.level0.user_table.reset_index(drop=True),
                                  check_dtype=False)
    bundle = load_bundle(steps_run["bundle"].path)
    states = tm.level0.label_states()[:60]
    np.testing.assert_array_equal(bundle.recommender.item_emb, tm.recommender.item_emb)
    for a, b in zip(tm.recommender.recommend(states, k=20), bundle.recommender.recommend(states, k=20)):
        np.testing.assert_array_equal(a.item_ids, b.item_ids)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


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
    from recsys.online.feature_store import get_store
    from recsys.online.user_rows import get_user_features

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
    from recsys.online.skew import skew_check

    users = pd.read_parquet(Path(steps_run["bundle"].path) / "users.parquet")
    same = skew_check(steps_run["bundle"].path, users, threshold=0.1)
    assert same["skewed"] is False and same["flagged"] == []
    shifted = users.copy()
    shifted["n_ratings"] = shifted["n_ratings"] * 5 + 100
    out = skew_check(steps_run["bundle"].path, shifted, threshold=0.1)
    assert out["skewed"] is True and out["flagged"] == ["n_ratings"]
    assert out["kl"]["n_ratings"] > 0.1 > out["kl"]["age"]


def test_ingest_adds_the_archived_events_up_to_the_cut_off(tiny_data, tmp_path):
    from recsys.data.movielens import load_movielens
    from recsys.online.archive import write_batch
    from recsys.online.events import Event
    from recsys.training import steps

    data = load_movielens(tiny_data)
    item = int(data.items["item_id"].iloc[0])
    t = int(data.interactions["timestamp"].max()) + 10
    write_batch([Event(event_id="x1", user_id=1, item_id=item, event_type="click", timestamp=t),
                 Event(event_id="x2", user_id=1, item_id=item, event_type="click", timestamp=t + 100)], tmp_path / "a")
    meta = steps.ingest(tiny_data, tmp_path / "out", "user-temporal", events_dir=tmp_path / "a", events_until=t + 50)
    assert meta["n_events"] == 1 and meta["n_interactions"] == len(data.interactions) + 1
    inter = pd.read_parquet(tmp_path / "out" / "interactions.parquet")
    assert inter["event_type"].iloc[-1] == "click" and inter["timestamp"].iloc[-1] == t
