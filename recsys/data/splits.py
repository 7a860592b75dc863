"""Train/test splits, defined exactly so numbers compare across runs.

``user-temporal`` (primary): per user, order by (timestamp, movie id); the last
``max(1, numpy.round(0.1 * n))`` interactions are test, the rest train; test items absent from
train are dropped. Every rating is a positive (implicit feedback).

``loo``: keep ratings >= 4; keep users with >= 5 of them; each user's last one (by timestamp,
then movie id) is test; test items absent from train are dropped.

``global-temporal``: one time cut-off for everyone, the 90% quantile of all timestamps (numpy's
"lower" method, so it is a timestamp of the data); interactions at or before it are train, later
ones of users who have train interactions are test; test items absent from train are dropped.
Every rating is a positive. Unlike the per-user protocols, no model sees anything that happened
after any test interaction, and users who stopped before the cut-off have no test.

Validation for early stopping and tuning is carved from train with the same rule (never from
test): :func:`validation_split`.

:func:`order_interactions` is the one definition of a user's history order, used by every
feature, model and split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PROTOCOLS: tuple[str, ...] = ("user-temporal", "loo", "global-temporal")
GLOBAL_QUANTILE = 0.9


CANONICAL_ORDER = ["user_id", "timestamp", "item_id"]


def order_interactions(interactions: pd.DataFrame) -> pd.DataFrame:
    """Sort by (user, timestamp, item id), stable: the canonical order of a user's history."""
    return interactions.sort_values(CANONICAL_ORDER, kind="mergesort").reset_index(drop=True)


def prepare(ratings: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """Apply the protocol's filters (``loo``: ratings >= 4, users with >= 5) and order."""
    if protocol in ("user-temporal", "global-temporal"):
        return order_interactions(ratings)
    if protocol == "loo":  # positives: ratings >= 4, and every other (non-rating) event of a log
        pos = ratings[(ratings["rating"] >= 4) | ratings["rating"].isna()]
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
    if protocol == "global-temporal":
        return _global_holdout(df)
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


def _global_holdout(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train = at or before the global cut-off; test = later interactions of train's users and items."""
    if df.empty:
        return df.copy(), df.copy()
    ts = df["timestamp"].to_numpy()
    cutoff = np.quantile(ts, GLOBAL_QUANTILE, method="lower")
    is_test = ts > cutoff
    train = df[~is_test].reset_index(drop=True)
    test = df[is_test]
    test = test[test["user_id"].isin(train["user_id"].unique()) & test["item_id"].isin(train["item_id"].unique())]
    return train, test.reset_index(drop=True)
