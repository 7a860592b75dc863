"""Evaluation harness: every model ranks the full catalog (train items) for every test user, with
the user's train items excluded, and the same metric functions score every list."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys.constants import PRIMARY_MODEL
from recsys.evaluation.bootstrap import metric_intervals, per_user_metrics
from recsys.evaluation.metrics import evaluate_lists
from recsys.features.catalog import Catalog
from recsys.features.users import UserState
from recsys.models.base import ScoreRecommender, top_k_indices
from recsys.models.baselines import EASE, IALS, Popularity
from recsys.models.index import IndexStats
from recsys.models.recommender import TwoStageRecommender

if TYPE_CHECKING:
    from recsys.config import Settings
    from recsys.training.levels import Level

log = logging.getLogger(__name__)
LIST_LEN = 100
BATCH = 512


@dataclass
class Evaluation:
    """Metrics per model on the level's labels, the candidate funnel and seconds per model."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # metric -> value, and <metric>_ci95 -> [lo, hi]
    funnel: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    per_user: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # model -> metric -> value per user


def top_k_from_scores(scores: np.ndarray, states: list[UserState], catalog: Catalog,
                      k: int = LIST_LEN) -> dict[int, list[int]]:
    """Rank each row of ``scores`` (users x catalog), seen items removed; item ids, best first."""
    return {s.user_id: catalog.item_ids[top_k_indices(scores[row], catalog.indices(s.seen_items), k)].tolist()
            for row, s in enumerate(states)}


def batched(fn: Callable[[list[UserState]], np.ndarray], states: list[UserState], catalog: Catalog,
            batch: int = 1024) -> dict[int, list[int]]:
    """:func:`top_k_from_scores` of ``fn`` over ``states`` in batches."""
    out: dict[int, list[int]] = {}
    for a in range(0, len(states), batch):
        chunk = states[a:a + batch]
        out.update(top_k_from_scores(fn(chunk), chunk, catalog))
    return out


class _Scorer:
    """Scores ranked lists on one level's labels and records each model's seconds."""

    def __init__(self, level: Level, result: Evaluation, seed: int = 0):
        self.level, self.result, self.seed = level, result, seed

    def __call__(self, name: str, lists: dict[int, list[int]], started: float) -> None:
        cat = self.level.catalog
        m: dict[str, Any] = evaluate_lists(lists, self.level.labels, len(cat), cat.genre_sets)
        per_user = per_user_metrics(lists, self.level.labels)
        m.update(metric_intervals(per_user, seed=self.seed))  # the same users resampled for every model
        self.result.models[name] = m
        self.result.per_user[name] = per_user
        self.result.seconds[f"eval_{name}"] = time.perf_counter() - started
        log.info("%-18s ndcg@10 %.4f recall@10 %.4f hr@10 %.4f", name, m["ndcg@10"], m["recall@10"], m["hr@10"])


def baseline_models(settings: Settings) -> list[ScoreRecommender]:
    """The order-blind baselines of every report, configured from ``settings``."""
    return [Popularity(), EASE(settings.ease_lambda),
            IALS(settings.ials_factors, settings.ials_iterations, settings.ials_regularization, settings.ials_alpha,
                 settings.seed)]


def evaluate_baselines(level: Level, settings: Settings, score: _Scorer) -> None:
    """Fit each baseline on the level's history and score its lists."""
    states, all_states = level.label_states(), list(level.states.values())
    for model in baseline_models(settings):
        t = time.perf_counter()
        model.fit(level.train, level.catalog, all_states)
        if model.name != "popularity":
            score.result.seconds[f"train_{model.name}"] = time.perf_counter() - t
        score(model.name, batched(model.scores, states, level.catalog), t)


def evaluate_channels(rec: TwoStageRecommender, level: Level, settings: Settings, score: _Scorer) -> dict[str, float]:
    """The channels on their own (two-tower through the FAISS index, co-occurrence) and the
    recall of the candidate funnel."""
    cat, states = level.catalog, level.label_states()
    t = time.perf_counter()
    tt_lists: dict[int, list[int]] = {}
    funnel_hits = merged_hits = n_rel = 0
    for a in range(0, len(states), BATCH):
        chunk = states[a:a + BATCH]
        vecs = rec.two_tower.embed_users(chunk)
        _, ann = rec.index.search(
            vecs, min(len(cat), settings.top_k_candidates + max(len(s.seen_items) for s in chunk))
        )
        cands, _ = rec.retrieve(chunk, vecs)
        for s, row, c in zip(chunk, ann, cands):
            seen = set(cat.indices(s.seen_items).tolist())
            ids = [i for i in row.tolist() if i >= 0 and i not in seen][: settings.top_k_candidates]
            item_ids = cat.item_ids[ids].tolist()
            tt_lists[s.user_id] = item_ids[:LIST_LEN]
            rel = level.labels[s.user_id]
            funnel_hits += len(set(item_ids) & rel)
            merged_hits += len(set(cat.item_ids[c.idx].tolist()) & rel)
            n_rel += len(rel)
    score("two_tower", tt_lists, t)
    if rec.cooc is not None:
        t = time.perf_counter()
        cooc_lists: dict[int, list[int]] = {}
        for s in states:
            vec = rec.cooc.user_vector(cat.indices(s.recent_items)).astype(np.float64)
            vec[vec <= 0] = -1e9  # items the channel does not reach rank below, by popularity
            vec += 1e-6 * cat.log_pop
            cooc_lists.update(top_k_from_scores(vec[None, :], [s], cat))
        score("cooc", cooc_lists, t)
    return {f"retrieval_recall@{settings.top_k_candidates}": funnel_hits / n_rel if n_rel else 0.0,
            "merged_candidates_recall": merged_hits / n_rel if n_rel else 0.0}


def evaluate_models(level: Level, rec: TwoStageRecommender, index_stats: IndexStats, funnel: dict[str, float],
                    settings: Settings, baselines: bool = True) -> Evaluation:
    """Metrics per model on ``level``'s labels (the baselines, each channel, the two-stage model);
    the candidate funnel (``funnel`` holds the training run's own entries)."""
    result = Evaluation()
    score = _Scorer(level, result, settings.seed)
    if baselines:
        evaluate_baselines(level, settings, score)
    channel_funnel = evaluate_channels(rec, level, settings, score)
    t = time.perf_counter()
    states = level.label_states()
    final: dict[int, list[int]] = {}
    for a in range(0, len(states), BATCH):
        chunk = states[a:a + BATCH]
        for s, r in zip(chunk, rec.recommend(chunk, k=LIST_LEN)):
            final[s.user_id] = r.item_ids.tolist()
    score(PRIMARY_MODEL, final, t)
    result.funnel = {**channel_funnel,
                     f"ann_recall@{settings.top_k_candidates}_vs_exact": index_stats.recall_at_k_vs_exact, **funnel,
                     "ranked_top10_recall@10": result.models[PRIMARY_MODEL]["recall@10"]}
    return result
