"""The three protocols' splits: invariants, exact sizes, the global cut-off, irregular shapes."""

import numpy as np
import pandas as pd
import pytest

from recsys.data.movielens import load_movielens
from recsys.data.splits import GLOBAL_QUANTILE, PROTOCOLS, split, validation_split
from recsys.data.synthetic import write_synthetic

KEY = ["user_id", "item_id", "timestamp"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_split_invariants(movielens, protocol):
    train, test = split(movielens.interactions, protocol)
    assert len(test) > 0
    assert not train.merge(test, on=KEY).shape[0], "a test interaction is in train"
    assert set(test["item_id"]) <= set(train["item_id"])
    assert set(test["user_id"]) <= set(train["user_id"])
    last_train = train.groupby("user_id")["timestamp"].max()
    first_test = test.groupby("user_id")["timestamp"].min()
    assert (first_test >= last_train.loc[first_test.index]).all(), "test precedes train in time"
    if protocol == "loo":
        assert (test.groupby("user_id").size() == 1).all()
        assert (train["rating"] >= 4).all()
    inner, val = validation_split(train, protocol)
    assert len(inner) + len(val) <= len(train)
    assert not inner.merge(val, on=KEY).shape[0]


def test_user_temporal_test_size_is_rounded_tenth():
    n = 25  # round(2.5) == 2 with numpy's banker's rounding
    items = np.arange(n)
    df = pd.concat([
        # ties on timestamp are broken by movie id
        pd.DataFrame({"user_id": 1, "item_id": items, "rating": 3, "timestamp": items // 3}),
        pd.DataFrame({"user_id": 2, "item_id": items[::-1], "rating": 3, "timestamp": items}),
    ])
    train, test = split(df, "user-temporal")
    assert test[test.user_id == 1]["item_id"].tolist() == [23, 24]
    assert test[test.user_id == 2]["item_id"].tolist() == [1, 0]
    assert len(train) == 46


def test_global_temporal_cuts_everyone_at_one_time():
    # user 1 active throughout, user 2 stops early, user 3 starts after the cut-off
    df = pd.DataFrame({
        "user_id": [1] * 20 + [2] * 5 + [3] * 2,
        "item_id": [i % 10 for i in range(20)] + list(range(5)) + [0, 1],
        "rating": 4,
        "timestamp": list(range(100, 120)) + list(range(100, 105)) + [200, 201],
    })
    train, test = split(df, "global-temporal")
    cutoff = np.quantile(df["timestamp"], GLOBAL_QUANTILE, method="lower")
    assert cutoff in set(df["timestamp"])
    assert train["timestamp"].max() <= cutoff < test["timestamp"].min()
    assert set(test["user_id"]) == {1}  # 2 has nothing after it, 3 nothing before it
    assert len(train) + len(test) + 2 == len(df)


def test_unknown_protocol_is_named():
    with pytest.raises(ValueError, match="unknown protocol 'nope'"):
        split(pd.DataFrame(columns=["user_id", "item_id", "rating", "timestamp"]), "nope")


def test_irregular_synthetic_has_the_shapes_it_promises(tmp_path):
    data = load_movielens(write_synthetic(tmp_path, 300, 400, irregular=True, seed=3))
    inter = data.interactions
    counts = inter.groupby("user_id").size()
    assert (counts <= 3).sum() >= 10, "very short users"
    first_seen = inter.groupby("item_id")["timestamp"].min()
    t0, t1 = inter["timestamp"].min(), inter["timestamp"].max()
    assert (first_seen > t0 + 0.85 * (t1 - t0)).sum() >= 10, "items that first appear late"
    gaps = np.diff(np.sort(inter["timestamp"].unique()))
    assert gaps.max() >= 86_400 * 29, "a month-long gap"
    ids = np.sort(data.items["item_id"].to_numpy())
    assert ids[-1] > len(ids), "item ids with holes"
    for protocol in PROTOCOLS:
        train, test = split(inter, protocol)
        assert len(test) > 0 and set(test["item_id"]) <= set(train["item_id"])
