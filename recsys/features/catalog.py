"""The item catalog: dense indices for movie ids plus the item-side arrays models share."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from recsys.features.items import DAY, genre_matrix


class Catalog:
    """Wraps an item table (see :func:`recsys.features.items.build_item_table`).

    Row ``i`` of the table is item index ``i``; ``item_ids[i]`` its movie id.
    """

    def __init__(self, table: pd.DataFrame, ref_ts: int | None = None):
        self.table = table.reset_index(drop=True)
        self.item_ids = self.table["item_id"].to_numpy(np.int64)
        self._sorter = np.argsort(self.item_ids, kind="stable")  # vectorised id -> index lookups
        self._sorted_ids = self.item_ids[self._sorter]
        self.genres = genre_matrix(self.table["genres"])
        self.genre_count = self.genres.sum(axis=1)
        self.year = self.table["year"].to_numpy(np.int64)
        self.popularity = self.table["popularity"].to_numpy(np.float64)
        self.ref_ts = int(ref_ts if ref_ts is not None else self.table["last_ts"].max())
        self.genre_sets = {int(m): frozenset(str(g).split("|")) for m, g in zip(self.item_ids, self.table["genres"])}
        # Precomputed item-side ranker features (see recsys.models.ranker_features.FEATURES).
        # Shares, not counts: the ranker is trained on an earlier (smaller) history than it serves.
        total = max(self.popularity.sum(), 1.0)
        recent = self.table["popularity_recent"].to_numpy(np.float64)
        self.log_pop = np.log((self.popularity + 1.0) / total).astype(np.float32)
        self.log_pop_recent = np.log((recent + 1.0) / max(recent.sum(), 1.0)).astype(np.float32)
        self.days_since_last = ((self.ref_ts - self.table["last_ts"].to_numpy(np.float64)) / DAY).astype(np.float32)
        self.days_since_first = ((self.ref_ts - self.table["first_ts"].to_numpy(np.float64)) / DAY).astype(np.float32)
        self.mean_rating = self.table["mean_rating"].to_numpy(np.float32)
        self.popular_order = np.argsort(-self.popularity, kind="stable")

    def __len__(self) -> int:
        return len(self.item_ids)

    def indices_aligned(self, item_ids: np.ndarray) -> np.ndarray:
        """The dense index of every id in ``item_ids``, -1 where the catalog does not have it."""
        ids = np.asarray(item_ids, dtype=np.int64)
        if not ids.size or not self._sorted_ids.size:
            return np.full(ids.shape, -1, np.int64)
        pos = np.minimum(np.searchsorted(self._sorted_ids, ids), self._sorted_ids.size - 1)
        return np.where(self._sorted_ids[pos] == ids, self._sorter[pos], -1)

    def indices(self, movie_ids: Iterable[int]) -> np.ndarray:
        """Dense indices of the known movie ids, in order (unknown ids are skipped)."""
        ids = np.asarray(
            movie_ids if isinstance(movie_ids, (list, tuple, np.ndarray)) else list(movie_ids), dtype=np.int64
        )
        if not ids.size or not self._sorted_ids.size:
            return np.zeros(0, np.int64)
        pos = np.minimum(np.searchsorted(self._sorted_ids, ids), self._sorted_ids.size - 1)
        return self._sorter[pos[self._sorted_ids[pos] == ids]]
