"""The SASRec baseline (recsys.models.sasrec, recsys.training.sasrec) on the synthetic data:
it learns the sequences, is deterministic for a seed, reads what a catalog has (short users,
items the catalog lacks, unknown users) and never recommends a seen item."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.features.users import UserState
from recsys.models.baselines import Popularity
from recsys.models.sasrec import SASRec, SASRecConfig
from recsys.training.levels import prepare_levels
from recsys.training.sasrec import fit_sasrec, level_ndcg

from testkit import fast_settings


@pytest.fixture(scope="module")
def levels(movielens):
    return prepare_levels(movielens, "user-temporal", fast_settings().history_len)


@pytest.fixture(scope="module")
def fitted(levels):
    """fit_sasrec: early stopping on level 2, level-0 refit for the best epoch count."""
    return fit_sasrec(levels, fast_settings())


def quick(**overrides) -> SASRecConfig:
    return SASRecConfig.from_settings(fast_settings(), **{"max_epochs": 3, **overrides})


def test_learns_the_sequences_better_than_popularity(fitted, levels):
    model, record = fitted
    lv = levels.level0
    popularity = level_ndcg(Popularity().fit(lv.train, lv.catalog), lv)
    assert level_ndcg(model, lv) >= 1.3 * popularity, (level_ndcg(model, lv), popularity)
    assert record["best_val_ndcg@10"] == max(record["val_ndcg@10"])
    assert record["val_ndcg@10"].index(record["best_val_ndcg@10"]) + 1 == record["best_epoch"]
    assert model.history["epochs"] == record["best_epoch"]  # the refit ran for the best epoch count
    assert record["hyper_parameters"]["max_len"] == fast_settings().sasrec_max_len
    assert record["train_seconds"] > 0 and record["seconds_per_epoch"] > 0


def test_deterministic_for_a_seed(levels):
    lv = levels.level2
    states = lv.label_states()[:50]
    a, b = (SASRec(quick()).fit(lv.train, lv.catalog).scores(states) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    c = SASRec(quick(seed=7)).fit(lv.train, lv.catalog).scores(states)
    assert not np.array_equal(a, c)


def test_short_users_missing_items_and_unknown_users(levels):
    lv = levels.level0
    known = lv.catalog.item_ids
    gone = int(known.max()) + 1000  # an item this catalog lacks (e.g. released after its cut-off)
    extra = pd.DataFrame({
        "user_id": [10**6, 10**6 + 1, 10**6 + 1, 10**6 + 2],
        "item_id": [int(known[0]), gone, int(known[1]), gone],
        "rating": [4, 5, 3, 4],
        "timestamp": [1, 2, 3, 4],
    })
    train = pd.concat([lv.train[extra.columns], extra], ignore_index=True)
    model = SASRec(quick(max_epochs=2)).fit(train, lv.catalog)
    assert model.sequence(UserState(user_id=10**6)).tolist() == [0]  # one interaction
    assert model.sequence(UserState(user_id=10**6 + 1)).tolist() == [1]  # the missing item dropped
    assert model.sequence(UserState(user_id=10**6 + 2)).size == 0  # nothing the catalog has
    stranger = UserState(user_id=10**9, seen_items=[gone, int(known[2]), int(known[3])])
    assert model.sequence(stranger).tolist() == [2, 3]
    states = [UserState(user_id=10**6, seen_items=[int(known[0])]), UserState(user_id=10**6 + 2, seen_items=[gone]),
              stranger, UserState(user_id=10**9 + 1)]
    scores = model.scores(states)
    assert scores.shape == (4, len(lv.catalog)) and np.isfinite(scores).all()
    np.testing.assert_array_equal(scores[1], np.log1p(lv.catalog.popularity).astype(np.float32))
    for s, r in zip(states, model.recommend(states, k=10)):
        assert len(r.item_ids) == 10 and not set(r.item_ids.tolist()) & set(s.seen_items)


def test_seen_items_are_never_recommended(fitted, levels):
    model, _ = fitted
    lv = levels.level0
    states = lv.label_states()[:30]
    for s, r in zip(states, model.recommend(states, k=len(lv.catalog))):
        assert not set(r.item_ids.tolist()) & set(s.seen_items)
        assert len(r.item_ids) == len(lv.catalog) - len(set(s.seen_items))


def test_fits_irregular_data_late_items_and_very_short_users(tmp_path):
    """Items released late (level 2's catalog lacks them, level 0's has them), 1-3 rating users,
    a gap in time, ids with holes: the fit and refit run and every labelled user is answered."""
    from recsys.data.movielens import load_movielens
    from recsys.data.synthetic import write_synthetic

    data = load_movielens(write_synthetic(tmp_path, n_users=200, n_items=300, seed=3, irregular=True))
    lv = prepare_levels(data, "user-temporal", fast_settings().history_len)
    assert len(lv.level0.catalog) > len(lv.level2.catalog)
    model, record = fit_sasrec(lv, fast_settings(sasrec_max_epochs=2))
    assert 1 <= record["best_epoch"] <= 2 and len(record["val_ndcg@10"]) == record["epochs_run"]
    states = lv.level0.label_states()
    recs = model.recommend(states, k=10)
    assert all(len(r.item_ids) == 10 and not set(r.item_ids.tolist()) & set(s.seen_items)
               for s, r in zip(states, recs))
