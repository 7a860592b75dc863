"""Next-item co-occurrence channel: what users watched right after the items a user just saw.

``matrix[a, b]`` sums ``1 / d`` over every pair where item ``b`` follows item ``a`` within
``window`` positions (distance ``d``) in a user's canonical history. A user's score for ``b``
is ``sum_l matrix[last_l, b] / l`` over the user's ``last_items`` most recent items (l = 1 is
the latest). Stored as a sparse matrix (``cooc.npz``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.splits import order_interactions
from recsys.features.catalog import Catalog


class NextItemCooc:
    """The next-item co-occurrence matrix of a training history and the scores it gives users."""

    name = "cooc"

    def __init__(self, window: int = 5, last_items: int = 5):
        self.window = window
        self.last_items = last_items
        self.matrix: sp.csr_matrix = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, train: pd.DataFrame, catalog: Catalog) -> NextItemCooc:
        ordered = order_interactions(train)
        idx = catalog.indices_aligned(ordered["item_id"].to_numpy())
        known = idx >= 0  # a history may hold items this catalog lacks (released after its cut-off)
        idx, users = idx[known], ordered["user_id"].to_numpy()[known]
        rows, cols, vals = [], [], []
        for d in range(1, self.window + 1):
            same = users[d:] == users[:-d]
            rows.append(idx[:-d][same])
            cols.append(idx[d:][same])
            vals.append(np.full(int(same.sum()), 1.0 / d, np.float32))
        n = len(catalog)
        self.matrix = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        self.matrix.sum_duplicates()
        return self

    def user_vector(self, recent_idx: np.ndarray, last_items: int | None = None) -> np.ndarray:
        """Dense scores over the catalog from a user's recent item indices (most recent last)."""
        last = (recent_idx[-(last_items or self.last_items):])[::-1]
        out = np.zeros(self.matrix.shape[1], np.float32)
        ptr, ind, val = self.matrix.indptr, self.matrix.indices, self.matrix.data
        for rank, i in enumerate(last, start=1):
            a, b = ptr[i], ptr[i + 1]  # row i of the CSR matrix, without building a matrix per row
            out[ind[a:b]] += val[a:b] / rank
        return out

    def user_vectors(self, recent_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``user_vector(recent_idx)`` and ``user_vector(recent_idx, last_items=1)`` (the latest
        item's row, read directly instead of a second pass)."""
        last1 = np.zeros(self.matrix.shape[1], np.float32)
        if recent_idx.size:
            i = recent_idx[-1]
            a, b = self.matrix.indptr[i], self.matrix.indptr[i + 1]
            last1[self.matrix.indices[a:b]] = self.matrix.data[a:b]
        return self.user_vector(recent_idx), last1

    def save(self, out_dir: Path) -> list[str]:
        sp.save_npz(Path(out_dir) / "cooc.npz", self.matrix)
        return ["cooc.npz"]

    @classmethod
    def load(cls, in_dir: Path, window: int, last_items: int) -> NextItemCooc:
        m = cls(window, last_items)
        m.matrix = sp.load_npz(Path(in_dir) / "cooc.npz").tocsr()
        return m
