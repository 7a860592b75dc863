"""The item table (``items.parquet``): the catalog of train items with their statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.data.movielens import GENRES

DAY = 86_400.0
RECENT_DAYS = 30
ITEM_COLUMNS = ("item_id", "title", "genres", "year", "popularity", "popularity_recent", "first_ts", "last_ts",
                "mean_rating")


def genre_matrix(genres: pd.Series) -> np.ndarray:
    """Multi-hot ``[n, 18]`` float32 matrix of '|'-joined genre strings (ml-1m genre order)."""
    index = {g: i for i, g in enumerate(GENRES)}
    out = np.zeros((len(genres), len(GENRES)), dtype=np.float32)
    for row, gs in enumerate(genres):
        for g in str(gs).split("|"):
            if g in index:
                out[row, index[g]] = 1.0
    return out


def build_item_table(items: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """The catalog: every item with at least one train interaction, with its statistics.

    Columns: :data:`ITEM_COLUMNS` (popularity = train count, popularity_recent = count in the
    last 30 days of train). Ordered by item_id; the row number is the item's dense index
    everywhere else.
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
    table = items[["item_id", "title", "genres", "year"]].merge(stats, left_on="item_id", right_index=True)
    table = table.sort_values("item_id").reset_index(drop=True)
    for col in ("popularity", "popularity_recent", "first_ts", "last_ts"):
        table[col] = table[col].astype(np.int64)
    table["mean_rating"] = table["mean_rating"].fillna(0.0).astype(np.float32)  # 0: no rating among its events
    table.attrs["ref_ts"] = ref_ts
    return table


def with_genres(interactions: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """``interactions`` with the items' genre strings joined on (for genre affinities)."""
    return interactions.merge(items[["item_id", "genres"]], on="item_id", how="left")
