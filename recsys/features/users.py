"""The user row: one contract for training tables, the online store and serving.

* :class:`UserState` is one row of the user table, the input of every model at inference time;
  :data:`USER_FEATURES` are its columns (after ``user_id``) in the table, in Feast and in the
  rows the transformer sends the predictor.
* :func:`build_user_table` -> ``users.parquet`` (what Feast materializes).
* :func:`append_event` is the one definition of how an interaction changes a row, used by every
  feature source (the bundle's in-memory table, the Feast online store).
* :func:`demographic_codes` is the one encoding of gender and age bucket the models read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.movielens import AGES, GENRES
from recsys.data.splits import order_interactions
from recsys.features.items import genre_matrix

USER_FEATURES = (
    "gender", "age", "occupation", "n_ratings", "mean_rating", "first_ts", "last_ts",
    "genre_affinity", "recent_items", "seen_items",
)
GENDERS = {"F": 1, "M": 2}  # 0 = unknown


@dataclass
class UserState:
    """Everything the models need about one user at inference time (a user-table row)."""

    user_id: int = 0
    recent_items: list[int] = field(default_factory=list)
    seen_items: list[int] = field(default_factory=list)
    gender: str = "U"
    age: int = 0
    occupation: int = 0
    n_ratings: int = 0
    mean_rating: float = 0.0
    first_ts: int = 0
    last_ts: int = 0
    genre_affinity: list[float] = field(default_factory=lambda: [0.0] * len(GENRES))

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> UserState:
        """A state from a table / online-store row (missing or null values take the defaults)."""
        def ints(v: Any) -> list[int]:
            return [] if v is None else [int(x) for x in v]

        aff = row.get("genre_affinity")
        return cls(
            user_id=int(row.get("user_id") or 0),
            recent_items=ints(row.get("recent_items")),
            seen_items=ints(row.get("seen_items")) or ints(row.get("recent_items")),
            gender=str(row.get("gender") or "U"),
            age=int(row.get("age") or 0),
            occupation=int(row.get("occupation") or 0),
            n_ratings=int(row.get("n_ratings") or 0),
            mean_rating=float(row.get("mean_rating") or 0.0),
            first_ts=int(row.get("first_ts") or 0),
            last_ts=int(row.get("last_ts") or 0),
            genre_affinity=[float(x) for x in aff]
            if aff is not None and len(aff) == len(GENRES)
            else [0.0] * len(GENRES),
        )

    def to_row(self) -> dict[str, Any]:
        """The row as the user table, the online store and the predictor's ``features`` input hold it."""
        return {"user_id": self.user_id, **{k: getattr(self, k) for k in USER_FEATURES}}


def demographic_codes(state: UserState) -> tuple[int, int, int]:
    """(gender code, age-bucket code, occupation): 0 = unknown for the first two."""
    return GENDERS.get(state.gender, 0), AGES.index(state.age) + 1 if state.age in AGES else 0, state.occupation


def append_event(state: UserState | None, user_id: int, item_id: int, timestamp: int, history_len: int,
                 event_type: str = "view", value: float | None = None) -> UserState:
    """The user's state after one more interaction (a new state for an unknown user).

    ``recent_items`` gets the item appended (the last ``history_len`` kept), ``seen_items`` gets
    it when new, ``n_ratings`` +1, ``last_ts`` = max(last_ts, timestamp), ``first_ts`` is set
    when it was not; a rating's ``value`` moves ``mean_rating`` (a running mean over
    ``n_ratings``). A ``skip`` only marks the item seen (never recommended again, not history);
    an ``impression`` changes nothing.
    Demographics stay. Pure: ``state`` is not modified.
    """
    user_id, item_id, timestamp = int(user_id), int(item_id), int(timestamp)
    if event_type == "impression":  # shown, not acted on: the row does not change
        return UserState(**{**(state or UserState(user_id=user_id)).__dict__})
    base = state if state is not None else UserState(user_id=user_id, first_ts=timestamp, last_ts=timestamp)
    seen = base.seen_items if item_id in base.seen_items else [*base.seen_items, item_id]
    if event_type == "skip":
        return UserState(**{**base.__dict__, "seen_items": list(seen), "genre_affinity": list(base.genre_affinity)})
    mean = base.mean_rating
    if value is not None:
        mean = (base.mean_rating * base.n_ratings + float(value)) / (base.n_ratings + 1)
    return UserState(**{
        **base.__dict__,
        "recent_items": [*base.recent_items, item_id][-history_len:],
        "seen_items": list(seen),
        "n_ratings": base.n_ratings + 1,
        "mean_rating": mean,
        "last_ts": max(base.last_ts, timestamp),
        "first_ts": base.first_ts or timestamp,
        "genre_affinity": list(base.genre_affinity),
    })


def build_user_table(users: pd.DataFrame, train: pd.DataFrame, history_len: int) -> pd.DataFrame:
    """One row per user with train interactions: demographics, activity, tastes, history.

    ``recent_items`` holds the last ``history_len`` item ids in canonical order, most recent
    last; ``seen_items`` every train item id (excluded from recommendations). ``train`` with a
    ``genres`` column (:func:`recsys.features.items.with_genres`) gives genre affinities.
    """
    ordered = order_interactions(train)
    g = ordered.groupby("user_id", sort=True)
    table = pd.DataFrame({
        "n_ratings": g.size().astype(np.int64),
        "mean_rating": g["rating"].mean().fillna(0.0).astype(np.float32),  # 0: no rating among the events
        "first_ts": g["timestamp"].min().astype(np.int64),
        "last_ts": g["timestamp"].max().astype(np.int64),
    })
    items = ordered["item_id"].to_numpy()
    bounds = np.r_[0, np.cumsum(table["n_ratings"].to_numpy())]
    table["recent_items"] = [items[max(a, b - history_len):b].tolist() for a, b in zip(bounds[:-1], bounds[1:])]
    table["seen_items"] = [items[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:])]
    if "genres" in ordered:
        sums = np.add.reduceat(genre_matrix(ordered["genres"]), bounds[:-1], axis=0)
        sums /= np.maximum(sums.sum(axis=1, keepdims=True), 1e-9)
        table["genre_affinity"] = [row.astype(np.float32).tolist() for row in sums]
    else:
        table["genre_affinity"] = [[0.0] * len(GENRES)] * len(table)
    table = table.reset_index().merge(users[["user_id", "gender", "age", "occupation"]], on="user_id", how="left")
    table["gender"] = table["gender"].fillna("U")
    table["age"] = table["age"].fillna(0).astype(np.int64)
    table["occupation"] = table["occupation"].fillna(0).astype(np.int64)
    return table[["user_id", *USER_FEATURES]]


def user_states(table: pd.DataFrame) -> dict[int, UserState]:
    """Every row of a user table as a :class:`UserState`, keyed by user id."""
    return {int(r["user_id"]): UserState.from_row(r) for r in table.to_dict("records")}
