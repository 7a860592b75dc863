"""Next-item co-occurrence channel: what users watched right after the items a user just saw.

``C[a, b]`` sums ``1 / d`` over every pair where item ``b`` follows item ``a`` within
``window`` positions (distance ``d``) in a user's canonical history. A user's score for ``b``
is ``sum_l C[last_l, b] / l`` over the user's ``last_items`` most recent items (l = 1 is the
latest). Stored as a sparse matrix (``cooc.npz``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.catalog import Catalog


class NextItemCooc:
    name = "cooc"

    def __init__(self, window: int = 5, last_items: int = 5):
        self.window = window
        self.last_items = last_items
        self.C: sp.csr_matrix | None = None

    def fit(self, train: pd.DataFrame, catalog: Catalog) -> "NextItemCooc":
        ordered = train.sort_values(["user_id", "timestamp", "item_id"], kind="mergesort")
        idx = np.searchsorted(catalog.item_ids, ordered["item_id"].to_numpy())
        users = ordered["user_id"].to_numpy()
        rows, cols, vals = [], [], []
        for d in range(1, self.window + 1):
            same = users[d:] == users[:-d]
            rows.append(idx[:-d][same])
            cols.append(idx[d:][same])
            vals.append(np.full(int(same.sum()), 1.0 / d, np.float32))
        n = len(catalog)
        self.C = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        self.C.sum_duplicates()
        return self

    def user_vector(self, recent_idx: np.ndarray, last_items: int | None = None) -> np.ndarray:
        """Dense scores over the catalog from a user's recent item indices (most recent last)."""
        last = (recent_idx[-(last_items or self.last_items):])[::-1]
        out = np.zeros(self.C.shape[1], np.float32)
        ptr, ind, val = self.C.indptr, self.C.indices, self.C.data
        for l, i in enumerate(last, start=1):
            a, b = ptr[i], ptr[i + 1]  # row i of the CSR matrix, without building a matrix per row
            out[ind[a:b]] += val[a:b] / l
        return out

    def user_vectors(self, recent_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``user_vector(recent_idx)`` and ``user_vector(recent_idx, last_items=1)`` (the latest
        item's row, read directly instead of a second pass)."""
        last1 = np.zeros(self.C.shape[1], np.float32)
        if recent_idx.size:
            i = recent_idx[-1]
            a, b = self.C.indptr[i], self.C.indptr[i + 1]
            last1[self.C.indices[a:b]] = self.C.data[a:b]
        return self.user_vector(recent_idx), last1

    def save(self, out_dir: Path) -> list[str]:
        sp.save_npz(Path(out_dir) / "cooc.npz", self.C)
        return ["cooc.npz"]

    @classmethod
    def load(cls, in_dir: Path, window: int, last_items: int) -> "NextItemCooc":
        m = cls(window, last_items)
        m.C = sp.load_npz(Path(in_dir) / "cooc.npz").tocsr()
        return m
