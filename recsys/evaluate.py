"""Evaluation harness: every model ranks the full catalog (train items) for every test user,
with the user's train items excluded, and the same metric functions score every list."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from recsys.baselines import EASE, IALS, Popularity
from recsys.catalog import Catalog
from recsys.config import Settings
from recsys.features import UserState
from recsys.metrics import evaluate_lists
from recsys.train import Level, TrainedModels

log = logging.getLogger(__name__)
LIST_LEN = 100


def top_k_from_scores(scores: np.ndarray, states: list[UserState], catalog: Catalog, k: int = LIST_LEN) -> dict[int, list[int]]:
    """Rank each row of ``scores`` (users x catalog), seen items removed; movie ids, best first."""
    out = {}
    for row, s in enumerate(states):
        sc = scores[row].astype(np.float64, copy=True)
        sc[catalog.indices(s.seen_items)] = -np.inf
        kk = min(k, sc.size - 1)
        top = np.argpartition(-sc, kk)[:kk]
        top = top[np.argsort(-sc[top], kind="stable")]
        top = top[np.isfinite(sc[top])]
        out[s.user_id] = catalog.item_ids[top].tolist()
    return out


def batched(fn: Callable[[list[UserState]], np.ndarray], states: list[UserState], catalog: Catalog, batch: int = 1024) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for a in range(0, len(states), batch):
        chunk = states[a:a + batch]
        out.update(top_k_from_scores(fn(chunk), chunk, catalog))
    return out


def evaluate_all(tm: TrainedModels, settings: Settings, baselines: bool = True) -> tuple[dict[str, dict], dict[str, float], dict[str, float]]:
    """Metrics per model on level 0's test labels; the funnel; seconds per model."""
    lv: Level = tm.level0
    states = lv.label_states()
    all_states = list(lv.states.values())
    cat = lv.catalog
    genres = cat.genre_sets
    models: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    rec = tm.recommender

    def score(name: str, lists: dict[int, list[int]], started: float) -> None:
        models[name] = evaluate_lists(lists, lv.labels, len(cat), genres)
        seconds[f"eval_{name}"] = time.perf_counter() - started
        log.info("%-18s ndcg@10 %.4f recall@10 %.4f hr@10 %.4f", name, models[name]["ndcg@10"], models[name]["recall@10"], models[name]["hr@10"])

    if baselines:
        t = time.perf_counter()
        pop = Popularity().fit(lv.train, cat)
        score("popularity", batched(pop.scores, states, cat), t)
        t = time.perf_counter()
        ease = EASE(settings.ease_lambda).fit(lv.train, cat, all_states)
        seconds["train_ease"] = time.perf_counter() - t
        score("ease", batched(ease.scores, states, cat), t)
        t = time.perf_counter()
        ials = IALS(settings.ials_factors, settings.ials_iterations, settings.ials_regularization, settings.ials_alpha, settings.seed).fit(lv.train, cat, all_states)
        seconds["train_ials"] = time.perf_counter() - t
        score("ials", batched(ials.scores, states, cat), t)

    # Channels on their own: the two-tower through the FAISS index, the co-occurrence channel.
    t = time.perf_counter()
    tt_lists, cooc_lists, funnel_hits, merged_hits, n_rel = {}, {}, 0, 0, 0
    for a in range(0, len(states), 512):
        chunk = states[a:a + 512]
        vecs = rec.two_tower.embed_users(chunk)
        _, ann = rec.index.search(vecs, min(len(cat), settings.top_k_candidates + max(len(s.seen_items) for s in chunk)))
        cands, _ = rec.retrieve(chunk, vecs)
        for s, row, c in zip(chunk, ann, cands):
            seen = set(cat.indices(s.seen_items).tolist())
            ids = [i for i in row.tolist() if i >= 0 and i not in seen][: settings.top_k_candidates]
            movie_ids = cat.item_ids[ids].tolist()
            tt_lists[s.user_id] = movie_ids[:LIST_LEN]
            rel = lv.labels[s.user_id]
            funnel_hits += len(set(movie_ids) & rel)
            merged_hits += len(set(cat.item_ids[c.idx].tolist()) & rel)
            n_rel += len(rel)
    score("two_tower", tt_lists, t)
    if rec.cooc is not None:
        t = time.perf_counter()
        for s in states:
            vec = rec.cooc.user_vector(cat.indices(s.recent_items)).astype(np.float64)
            vec[vec <= 0] = -1e9  # items the channel does not reach rank below, by popularity
            vec += 1e-6 * cat.log_pop
            cooc_lists.update(top_k_from_scores(vec[None, :], [s], cat))
        score("cooc", cooc_lists, t)

    t = time.perf_counter()
    final: dict[int, list[int]] = {}
    for a in range(0, len(states), 512):
        chunk = states[a:a + 512]
        for s, r in zip(chunk, rec.recommend_batch(chunk, k=LIST_LEN)):
            final[s.user_id] = r.item_ids.tolist()
    score("two_tower+ranker", final, t)
    funnel = {
        f"retrieval_recall@{settings.top_k_candidates}": funnel_hits / n_rel if n_rel else 0.0,
        "merged_candidates_recall": merged_hits / n_rel if n_rel else 0.0,
        f"ann_recall@{settings.top_k_candidates}_vs_exact": tm.index_stats.recall_at_k_vs_exact,
        **tm.funnel,
    }
    return models, funnel, seconds
