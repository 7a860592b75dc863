"""Ranker inputs: the features of (user, candidate) pairs.

:func:`candidate_features` is the single definition of the ranker's inputs, used to build the
training table offline and to score candidates in the predictor, so the two cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.features.catalog import Catalog
from recsys.features.items import DAY
from recsys.features.users import UserState, demographic_codes

FEATURES: tuple[str, ...] = (
    # retrieval channels
    "tt_score", "tt_rank", "tt_gap", "cooc_score", "cooc_share", "cooc_rank", "cooc_last1", "prerank",
    # similarity of the candidate to the user's last items (two-tower item vectors, genres,
    # release year, movie id: ml-1m ids follow the order movies entered the catalog)
    "sim_last1", "sim_last5_max", "sim_last5_mean", "genre_jaccard_last1", "genre_jaccard_last5",
    "year_delta_last1", "id_delta_last1",
    # item
    "item_log_pop", "item_log_pop_recent", "item_days_since_last", "item_days_since_first",
    "item_mean_rating", "item_year", "item_age_years",
    # item, streaming: interactions in the last 5 min / hour (recsys.features.trending), log1p
    "item_trend_5m", "item_trend_1h",
    # user x item
    "genre_affinity",
    # user
    "user_log_n", "user_mean_rating", "user_days_active", "user_n_recent", "gender", "age", "occupation",
)
CATEGORICAL = ("gender", "occupation")
YEAR_SECONDS = 365.25 * DAY


@dataclass
class Candidates:
    """Merged candidates of one user, with per-channel scores and ranks (0-based; absent = n)."""

    idx: np.ndarray  # catalog indices
    tt_score: np.ndarray
    tt_rank: np.ndarray
    cooc_score: np.ndarray
    cooc_rank: np.ndarray
    cooc_last1: np.ndarray
    prerank: np.ndarray  # reciprocal-rank fusion of the channels


def candidate_features(state: UserState, recent_idx: np.ndarray, cands: Candidates, catalog: Catalog,
                       item_emb: np.ndarray, trend: np.ndarray | None = None) -> np.ndarray:
    """``[len(cands.idx), len(FEATURES)]`` float32 feature matrix, columns in FEATURES order;
    ``trend``: the candidates' trending counts ``[n, 2]`` (None: no stream, zeros)."""
    c = cands.idx
    n = c.size
    emb_c = item_emb[c]
    g = catalog.genres[c]
    g_count = catalog.genre_count[c]
    last = recent_idx[-5:]
    if last.size:
        # [<=5, n] (rows = the user's last items): reductions over rows are contiguous and cheap.
        sims = item_emb[last] @ emb_c.T
        sim_last1, sim_max, sim_mean = sims[-1], sims.max(axis=0), sims.mean(axis=0)
        inter = catalog.genres[last] @ g.T
        union = catalog.genre_count[last][:, None] + g_count[None, :] - inter
        jac = inter / np.maximum(union, 1.0)
        jac_last1, jac_mean = jac[-1], jac.mean(axis=0)
        year_delta = (catalog.year[c] - catalog.year[last[-1]]).astype(np.float32)
        id_delta = (catalog.item_ids[c] - catalog.item_ids[last[-1]]).astype(np.float32)
    else:
        sim_last1 = sim_max = sim_mean = jac_last1 = jac_mean = np.zeros(n, np.float32)
        year_delta = id_delta = np.full(n, np.nan, np.float32)
    aff = (g @ np.asarray(state.genre_affinity, np.float32)) / np.maximum(g_count, 1.0)
    user_year = 1970 + state.last_ts / YEAR_SECONDS if state.last_ts else 1970 + catalog.ref_ts / YEAR_SECONDS
    year = catalog.year[c].astype(np.float32)
    top_tt = cands.tt_score.max() if n else 0.0
    top_cooc = cands.cooc_score.max() if n else 0.0
    cols = [
        cands.tt_score, cands.tt_rank, cands.tt_score - top_tt,
        cands.cooc_score, cands.cooc_score / top_cooc if top_cooc > 0 else np.zeros(n, np.float32),
        cands.cooc_rank, cands.cooc_last1, cands.prerank,
        sim_last1, sim_max, sim_mean, jac_last1, jac_mean, year_delta, id_delta,
        catalog.log_pop[c], catalog.log_pop_recent[c], catalog.days_since_last[c], catalog.days_since_first[c],
        catalog.mean_rating[c], year, np.where(year > 0, user_year - year, -1.0),
        *(np.log1p(trend.T) if trend is not None else np.zeros((2, n), np.float32)),
        aff,
    ]
    user = [
        np.log1p(state.n_ratings), state.mean_rating, (state.last_ts - state.first_ts) / DAY, len(state.recent_items),
        *demographic_codes(state),
    ]
    out = np.empty((n, len(FEATURES)), np.float32)
    for j, col in enumerate(cols):
        out[:, j] = col
    out[:, len(cols):] = np.asarray(user, np.float32)[None, :]
    return out
