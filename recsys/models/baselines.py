"""Baselines evaluated in the same run: popularity, EASE and iALS.

Each is a :class:`~recsys.models.base.ScoreRecommender`: ``fit(train, catalog, states)`` and
``scores(states) -> [n_users, n_items]`` over the catalog; ranking with seen items removed is
the base class's. :class:`Popularity` is also the servers' fallback for users the models cannot
answer (:meth:`Popularity.top`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.features.catalog import Catalog
from recsys.features.users import UserState
from recsys.models.base import ScoreRecommender

log = logging.getLogger(__name__)


def interaction_matrix(states: list[UserState], catalog: Catalog, field: str = "seen_items") -> sp.csr_matrix:
    """Binary user x item CSR matrix of each state's ``field`` items (rows follow ``states``)."""
    rows, cols = [], []
    for i, s in enumerate(states):
        idx = np.unique(catalog.indices(getattr(s, field)))
        rows.append(np.full(idx.size, i))
        cols.append(idx)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    return sp.csr_matrix((np.ones(r.size, np.float32), (r, c)), shape=(len(states), len(catalog)))


class Popularity(ScoreRecommender):
    """Most interacted-with train items first.

    Also the servers' answer when the models cannot give one (:meth:`top`): the most popular
    items of a model version's catalog, seen items removed, scored by their share of the top
    item's count.
    """

    name = "popularity"

    def fit(self, train: pd.DataFrame | None, catalog: Catalog, states: Sequence[UserState] = ()) -> Popularity:
        self.catalog = catalog
        order = np.argsort(-catalog.popularity, kind="stable")
        self._top_ids = catalog.item_ids[order]
        pop = catalog.popularity[order]
        self._top_scores = (pop / max(pop.max(), 1.0)).astype(np.float32) if len(pop) else pop.astype(np.float32)
        return self

    def scores(self, states: list[UserState]) -> np.ndarray:
        return np.tile(np.log1p(self.catalog.popularity).astype(np.float32), (len(states), 1))

    def top(self, k: int, seen: Sequence[int] | None = None) -> tuple[list[int], list[float]]:
        """The ``k`` most popular item ids not in ``seen``, with their share of the top count."""
        if not seen:
            return self._top_ids[:k].tolist(), self._top_scores[:k].tolist()
        s = set(seen)
        ids, sc = [], []
        for i, v in zip(self._top_ids, self._top_scores):
            if int(i) not in s:
                ids.append(int(i))
                sc.append(float(v))
                if len(ids) == k:
                    break
        return ids, sc


class EASE(ScoreRecommender):
    """EASE (Steck 2019): closed-form item-item model B = I - P / diag(P), P = (X^T X + λI)^-1."""

    name = "ease"

    def __init__(self, lam: float = 500.0):
        self.lam = lam

    def fit(self, train: pd.DataFrame, catalog: Catalog, states: Sequence[UserState] = ()) -> EASE:
        self.catalog = catalog
        x = interaction_matrix(list(states), catalog)
        g = (x.T @ x).toarray().astype(np.float64)
        g[np.diag_indices_from(g)] += self.lam
        p = np.linalg.inv(g)
        b = -p / np.diag(p)[None, :]
        b[np.diag_indices_from(b)] = 0.0
        self.B = b.astype(np.float32)
        return self

    def scores(self, states: list[UserState]) -> np.ndarray:
        return np.asarray(interaction_matrix(states, self.catalog) @ self.B)


class IALS(ScoreRecommender):
    """Implicit ALS (Hu, Koren, Volinsky 2008) via the ``implicit`` package, confidence 1 + αr."""

    name = "ials"

    def __init__(self, factors: int = 64, iterations: int = 15, regularization: float = 0.05, alpha: float = 2.0,
                 seed: int = 42):
        self.params = dict(factors=factors, iterations=iterations, regularization=regularization, alpha=alpha,
                           random_state=seed)

    def fit(self, train: pd.DataFrame, catalog: Catalog, states: Sequence[UserState] = ()) -> IALS:
        from implicit.cpu.als import AlternatingLeastSquares

        self.catalog = catalog
        self._row = {s.user_id: i for i, s in enumerate(states)}
        self.model = AlternatingLeastSquares(**self.params, calculate_training_loss=False)
        self.model.fit(interaction_matrix(list(states), catalog), show_progress=False)
        return self

    def scores(self, states: list[UserState]) -> np.ndarray:
        uf = np.asarray(self.model.user_factors)
        users = np.zeros((len(states), uf.shape[1]), np.float32)
        for r, s in enumerate(states):
            if s.user_id in self._row:
                users[r] = uf[self._row[s.user_id]]
        return users @ np.asarray(self.model.item_factors).T
