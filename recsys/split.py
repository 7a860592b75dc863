"""Train/test splits, defined exactly so numbers compare across runs.

``user-temporal`` (primary): per user, order by (timestamp, movie id); the last
``max(1, numpy.round(0.1 * n))`` interactions are test, the rest train; test items absent from
train are dropped. Every rating is a positive (implicit feedback).

``loo``: keep ratings >= 4; keep users with >= 5 of them; each user's last one (by timestamp,
then movie id) is test; test items absent from train are dropped.

Validation for early stopping and tuning is carved from train with the same function (never
from test): ``split(train, protocol)`` again.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

Protocol = Literal["user-temporal", "loo"]
PROTOCOLS: tuple[str, ...] = ("user-temporal", "loo")


def order_interactions(ratings: pd.DataFrame) -> pd.DataFrame:
    """Sort by (user, timestamp, movie id): the canonical order of a user's history."""
    return ratings.sort_values(["user_id", "timestamp", "item_id"], kind="mergesort").reset_index(drop=True)


def prepare(ratings: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """Apply the protocol's filters (``loo``: ratings >= 4, users with >= 5) and order."""
    if protocol == "user-temporal":
        return order_interactions(ratings)
    if protocol == "loo":
        pos = ratings[ratings["rating"] >= 4]
        counts = pos.groupby("user_id")["item_id"].transform("size")
        return order_interactions(pos[counts >= 5])
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")


def split(ratings: pd.DataFrame, protocol: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(train, test)`` for ``protocol``; both ordered by (user, timestamp, item)."""
    return holdout(prepare(ratings, protocol), protocol)


def validation_split(train: pd.DataFrame, protocol: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Carve ``(inner_train, validation)`` out of ``train`` the way test was carved out.

    The protocol's filters were applied once already, so only the hold-out rule is repeated.
    """
    return holdout(order_interactions(train), protocol)


def holdout(df: pd.DataFrame, protocol: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The hold-out rule of ``protocol`` on interactions already in canonical order."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    n = df.groupby("user_id")["item_id"].transform("size").to_numpy()
    pos = df.groupby("user_id").cumcount().to_numpy()
    if protocol == "user-temporal":
        n_test = np.maximum(1, np.round(0.1 * n)).astype(np.int64)
    else:
        n_test = np.ones_like(n)
    is_test = pos >= n - n_test
    train = df[~is_test].reset_index(drop=True)
    test = df[is_test]
    test = test[test["item_id"].isin(train["item_id"].unique())].reset_index(drop=True)
    return train, test
