"""The contract every recommender of the project meets, and the shared top-k of score models.

A recommender answers :meth:`Recommender.recommend` for a batch of :class:`UserState` with one
:class:`Recommendation` per user: at most ``k`` catalog items, best first, none of the user's
seen items, scores not increasing. The two-stage model and every baseline implement it, and one
contract test suite runs over all of them (tests/unit/models/test_model_contract.py).

Baselines that score the whole catalog derive from :class:`ScoreRecommender`: they implement
``fit`` and ``scores``; ranking (seen items removed, stable order) is done here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from recsys.features.catalog import Catalog
from recsys.features.users import UserState


@dataclass
class Recommendation:
    """One user's answer."""

    item_ids: np.ndarray  # item ids, best first
    scores: np.ndarray  # final score (ranker, or the model's own)
    retrieval_scores: np.ndarray | None = None  # two-tower inner product (two-stage model only)
    n_candidates: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)


class Recommender(Protocol):
    """What evaluation and serving need from a model."""

    name: str

    def recommend(self, states: list[UserState], k: int = 10) -> list[Recommendation]:
        """Top-``k`` items per state, best first, seen items excluded."""
        ...


def top_k_indices(scores: np.ndarray, seen_idx: np.ndarray, k: int) -> np.ndarray:
    """Catalog indices of the ``k`` best finite ``scores`` (one user), ``seen_idx`` excluded,
    best first; ties keep catalog order."""
    sc = scores.astype(np.float64, copy=True)
    sc[seen_idx] = -np.inf
    kk = min(k, sc.size - 1)
    top = np.argpartition(-sc, kk)[:kk]
    top = top[np.argsort(-sc[top], kind="stable")]
    return top[np.isfinite(sc[top])]


class ScoreRecommender:
    """A model that scores every catalog item for a user (popularity, EASE, iALS ...)."""

    name = "score"
    catalog: Catalog

    def fit(self, train: pd.DataFrame, catalog: Catalog, states: list[UserState]) -> ScoreRecommender:
        """Learn from ``train`` (canonical interactions) for ``catalog``; ``states`` are the
        training users' rows (histories) in a fixed order."""
        raise NotImplementedError

    def scores(self, states: list[UserState]) -> np.ndarray:
        """``[len(states), len(catalog)]`` scores, higher is better."""
        raise NotImplementedError

    def recommend(self, states: list[UserState], k: int = 10) -> list[Recommendation]:
        out = []
        all_scores = self.scores(states)
        for row, s in enumerate(states):
            top = top_k_indices(all_scores[row], self.catalog.indices(s.seen_items), k)
            out.append(Recommendation(self.catalog.item_ids[top], all_scores[row][top].astype(np.float32)))
        return out
