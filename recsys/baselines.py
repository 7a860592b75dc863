"""Baselines evaluated in the same run: popularity, EASE and iALS.

Each implements ``fit(train, catalog)`` and ``scores(states) -> [n_users, n_items]`` over the
catalog; :func:`recsys.evaluate.top_k` turns scores into ranked lists with seen items removed.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.catalog import Catalog
from recsys.features import UserState

log = logging.getLogger(__name__)


def interaction_matrix(states: list[UserState], catalog: Catalog, field: str = "seen_items") -> sp.csr_matrix:
    """Binary user x item CSR matrix of each state's ``field`` items (rows follow ``states``)."""
    rows, cols = [], []
    for r, s in enumerate(states):
        idx = np.unique(catalog.indices(getattr(s, field)))
        rows.append(np.full(idx.size, r))
        cols.append(idx)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    return sp.csr_matrix((np.ones(r.size, np.float32), (r, c)), shape=(len(states), len(catalog)))


class Popularity:
    """Most interacted-with train items first."""

    name = "popularity"

    def fit(self, train: pd.DataFrame, catalog: Catalog) -> "Popularity":
        self.catalog = catalog
        return self

    def scores(self, states: list[UserState]) -> np.ndarray:
        return np.tile(np.log1p(self.catalog.popularity).astype(np.float32), (len(states), 1))


class EASE:
    """EASE (Steck 2019): closed-form item-item model B = I - P / diag(P), P = (X^T X + λI)^-1."""

    name = "ease"

    def __init__(self, lam: float = 500.0):
        self.lam = lam

    def fit(self, train: pd.DataFrame, catalog: Catalog, states: list[UserState]) -> "EASE":
        self.catalog = catalog
        x = interaction_matrix(states, catalog)
        g = (x.T @ x).toarray().astype(np.float64)
        g[np.diag_indices_from(g)] += self.lam
        p = np.linalg.inv(g)
        b = -p / np.diag(p)[None, :]
        b[np.diag_indices_from(b)] = 0.0
        self.B = b.astype(np.float32)
        return self

    def scores(self, states: list[UserState]) -> np.ndarray:
        return np.asarray(interaction_matrix(states, self.catalog) @ self.B)


class IALS:
    """Implicit ALS (Hu, Koren, Volinsky 2008) via the ``implicit`` package, confidence 1 + αr."""

    name = "ials"

    def __init__(self, factors: int = 64, iterations: int = 15, regularization: float = 0.05, alpha: float = 2.0, seed: int = 42):
        self.params = dict(factors=factors, iterations=iterations, regularization=regularization, alpha=alpha, random_state=seed)

    def fit(self, train: pd.DataFrame, catalog: Catalog, states: list[UserState]) -> "IALS":
        from implicit.cpu.als import AlternatingLeastSquares

        self.catalog = catalog
        self._row = {s.user_id: i for i, s in enumerate(states)}
        self.model = AlternatingLeastSquares(**self.params, calculate_training_loss=False)
        self.model.fit(interaction_matrix(states, catalog), show_progress=False)
        return self

    def scores(self, states: list[UserState]) -> np.ndarray:
        uf = np.asarray(self.model.user_factors)
        users = np.zeros((len(states), uf.shape[1]), np.float32)
        for r, s in enumerate(states):
            if s.user_id in self._row:
                users[r] = uf[self._row[s.user_id]]
        return users @ np.asarray(self.model.item_factors).T
