"""Item and user feature tables: one code path for training, the feature store and serving.

* :func:`build_item_table` -> ``items.parquet`` (the catalog: train items only)
* :func:`build_user_table` -> ``users.parquet`` (what Feast materializes for the online store)
* :class:`UserState` is one row of the user table, the input of every model at inference time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.data import GENRES

DAY = 86_400.0
RECENT_DAYS = 30
USER_FEATURES = (
    "gender", "age", "occupation", "n_ratings", "mean_rating", "first_ts", "last_ts",
    "genre_affinity", "recent_items", "seen_items",
)
AGES = (1, 18, 25, 35, 45, 50, 56)


def genre_matrix(genres: pd.Series) -> np.ndarray:
    """Multi-hot ``[n, 18]`` float32 matrix of '|'-joined genre strings (ml-1m genre order)."""
    index = {g: i for i, g in enumerate(GENRES)}
    out = np.zeros((len(genres), len(GENRES)), dtype=np.float32)
    for row, gs in enumerate(genres):
        for g in str(gs).split("|"):
            if g in index:
                out[row, index[g]] = 1.0
    return out


def build_item_table(movies: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """The catalog: every movie with at least one train interaction, with its statistics.

    Columns: item_id, title, genres, year, popularity (train count), popularity_recent (count in
    the last 30 days of train), first_ts, last_ts, mean_rating. Ordered by item_id; the row
    number is the item's dense index everywhere else.
    """
    ref_ts = int(train["timestamp"].max())
    g = train.groupby("item_id")
    stats = pd.DataFrame({
        "popularity": g.size(),
        "popularity_recent": train[train["timestamp"] > ref_ts - RECENT_DAYS * DAY].groupby("item_id").size(),
        "first_ts": g["timestamp"].min(),
        "last_ts": g["timestamp"].max(),
        "mean_rating": g["rating"].mean(),
    })
    stats["popularity_recent"] = stats["popularity_recent"].fillna(0)
    table = movies[["item_id", "title", "genres", "year"]].merge(stats, left_on="item_id", right_index=True)
    table = table.sort_values("item_id").reset_index(drop=True)
    for col in ("popularity", "popularity_recent", "first_ts", "last_ts"):
        table[col] = table[col].astype(np.int64)
    table["mean_rating"] = table["mean_rating"].astype(np.float32)
    table.attrs["ref_ts"] = ref_ts
    return table


def build_user_table(users: pd.DataFrame, train: pd.DataFrame, history_len: int) -> pd.DataFrame:
    """One row per user with train interactions: demographics, activity, tastes, history.

    ``recent_items`` holds the last ``history_len`` movie ids in (timestamp, movie id) order,
    most recent last; ``seen_items`` every train movie id (excluded from recommendations).
    """
    ordered = train.sort_values(["user_id", "timestamp", "item_id"], kind="mergesort")
    movie_genres = None
    if "genres" in ordered:
        movie_genres = genre_matrix(ordered["genres"])
    g = ordered.groupby("user_id", sort=True)
    table = pd.DataFrame({
        "n_ratings": g.size().astype(np.int64),
        "mean_rating": g["rating"].mean().astype(np.float32),
        "first_ts": g["timestamp"].min().astype(np.int64),
        "last_ts": g["timestamp"].max().astype(np.int64),
    })
    items = ordered["item_id"].to_numpy()
    bounds = np.r_[0, np.cumsum(table["n_ratings"].to_numpy())]
    table["recent_items"] = [items[max(a, b - history_len):b].tolist() for a, b in zip(bounds[:-1], bounds[1:])]
    table["seen_items"] = [items[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:])]
    if movie_genres is not None:
        sums = np.add.reduceat(movie_genres, bounds[:-1], axis=0)
        sums /= np.maximum(sums.sum(axis=1, keepdims=True), 1e-9)
        table["genre_affinity"] = [row.astype(np.float32).tolist() for row in sums]
    else:
        table["genre_affinity"] = [[0.0] * len(GENRES)] * len(table)
    table = table.reset_index().merge(users[["user_id", "gender", "age", "occupation"]], on="user_id", how="left")
    table["gender"] = table["gender"].fillna("U")
    table["age"] = table["age"].fillna(0).astype(np.int64)
    table["occupation"] = table["occupation"].fillna(0).astype(np.int64)
    return table[["user_id", *USER_FEATURES]]


def with_genres(train: pd.DataFrame, movies: pd.DataFrame) -> pd.DataFrame:
    """``train`` with the movies' genre strings joined on (for genre affinities)."""
    return train.merge(movies[["item_id", "genres"]], on="item_id", how="left")


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
    def from_row(cls, row: dict) -> "UserState":
        def ints(v) -> list[int]:
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
            genre_affinity=[float(x) for x in aff] if aff is not None and len(aff) == len(GENRES) else [0.0] * len(GENRES),
        )

    def to_row(self) -> dict:
        return {"user_id": self.user_id, **{k: getattr(self, k) for k in USER_FEATURES}}


def user_states(table: pd.DataFrame) -> dict[int, UserState]:
    """Every row of a user table as a :class:`UserState`, keyed by user id."""
    return {int(r["user_id"]): UserState.from_row(r) for r in table.to_dict("records")}
