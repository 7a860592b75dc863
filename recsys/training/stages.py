"""The stages of a training run, each a function of in-memory objects.

``train_towers`` -> ``build_retrieval`` (levels 2 and 0) -> ``train_ranker``. The in-memory run
(:mod:`recsys.training.run`) composes them directly; the pipeline steps
(:mod:`recsys.training.steps`) call the same functions between loading and saving files, so the
two paths cannot drift apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from recsys.features.trending import TimelineTrending
from recsys.models.cooc import NextItemCooc
from recsys.models.index import IndexStats, build_index
from recsys.models.ranker import Ranker, RankerTable, fit_ranker
from recsys.models.recommender import RecommenderConfig, TwoStageRecommender
from recsys.models.two_tower import TwoTower, train_two_tower
from recsys.training.levels import Level

if TYPE_CHECKING:
    from recsys.config import Settings


@dataclass
class TowerFit:
    """The towers of levels 2 (early-stopped on level-2 labels) and 0 (refit for the best epoch count)."""

    level2: TwoTower
    level0: TwoTower
    history: dict[str, Any]  # level 2's training history (+ final_epochs, seconds_validation, seconds_final)


@dataclass
class RankerFit:
    """The ranker with the tables it was trained and early-stopped on."""

    ranker: Ranker
    train: RankerTable
    valid: RankerTable
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def funnel(self) -> dict[str, float]:
        return {"ranker_train_candidate_recall": self.train.candidate_recall,
                "ranker_valid_candidate_recall": self.valid.candidate_recall}


def train_towers(lv2: Level, lv0: Level, settings: Settings, progress: bool = True) -> TowerFit:
    """Level-2 towers with early stopping on level-2 recall, then level-0 towers for the best epoch count."""
    t = time.perf_counter()
    tt2, history = train_two_tower(lv2.train, lv2.catalog, lv2.user_table, settings,
                                   validation=(lv2.label_states(), lv2.labels), progress=progress)
    history["seconds_validation"] = time.perf_counter() - t
    tt0, hist0 = train_two_tower(lv0.train, lv0.catalog, lv0.user_table, settings,
                                 epochs=max(1, history["best_epoch"]), progress=progress)
    history["final_epochs"] = hist0["epochs"][-1]
    history["seconds_final"] = hist0["seconds"]
    return TowerFit(tt2, tt0, history)


def build_retrieval(level: Level, tt: TwoTower, settings: Settings) -> tuple[TwoStageRecommender, IndexStats]:
    """Index over the towers' item vectors plus the co-occurrence channel, for ``level``."""
    queries = tt.embed_users(level.label_states() or list(level.states.values())[:2000])
    index, stats = build_index(tt.item_embeddings(), queries, settings.top_k_candidates, settings.faiss_n_lists,
                               settings.faiss_n_probe, settings.faiss_target_recall, settings.faiss_exact_below,
                               settings.seed)
    return recommender_for(level, tt, index, fit_cooc(level, settings), settings), stats


def recommender_for(level: Level, tt: TwoTower, index: Any, cooc: NextItemCooc | None, settings: Settings,
                    ranker: Ranker | None = None, ranker_threads: int | None = None) -> TwoStageRecommender:
    """The two-stage recommender of ``level``: its catalog, these channels, trending counts taken
    point in time from the level's history (what training and offline evaluation see)."""
    rec = TwoStageRecommender(level.catalog, tt, index, cooc, ranker,
                              RecommenderConfig.from_settings(settings, ranker_threads=ranker_threads))
    rec.trending = TimelineTrending(level.train, level.catalog)
    return rec


def fit_cooc(level: Level, settings: Settings) -> NextItemCooc | None:
    """The co-occurrence channel of ``level``'s history (None when the channel is off)."""
    if not settings.cooc_candidates:
        return None
    return NextItemCooc(settings.cooc_window, settings.cooc_last_items).fit(level.train, level.catalog)


def level1_recommender(lv1: Level, rec2: TwoStageRecommender, settings: Settings) -> TwoStageRecommender:
    """Level 1's candidates: level 2's towers and index (no model saw level-1 labels), level-1
    co-occurrence; level 1's catalog is level 2's (the towers know no other items)."""
    if not np.array_equal(lv1.catalog.item_ids, rec2.catalog.item_ids):
        raise ValueError("level 1 must be built with level 2's items (make_level(..., items=...))")
    return recommender_for(lv1, rec2.two_tower, rec2.index, fit_cooc(lv1, settings), settings, ranker_threads=0)


def ranker_table(rec: TwoStageRecommender, level: Level, batch: int = 512, progress: bool = True,
                 desc: str = "ranker table") -> RankerTable:
    """Features and binary labels of every labelled user's candidates (groups with a positive)."""
    xs, ys, groups = [], [], []
    hits = total = 0
    states = level.label_states()
    for a in tqdm(range(0, len(states), batch), desc=desc, disable=not progress, leave=False):
        chunk = states[a:a + batch]
        cands, recents = rec.retrieve(chunk)
        feats = rec.features(chunk, cands, recents)
        for s, c, f in zip(chunk, cands, feats):
            rel = level.labels[s.user_id]
            hit = np.isin(level.catalog.item_ids[c.idx], list(rel))
            y = hit.astype(np.float32)
            if level.grades is not None:  # graded labels: the held-out item's grade where it is a candidate
                grade = level.grades[s.user_id]
                y = np.array([grade.get(int(i), 0) for i in level.catalog.item_ids[c.idx]], np.float32)
            hits += int(hit.sum())
            total += len(rel)
            if hit.any():
                xs.append(f)
                ys.append(y)
                groups.append(f.shape[0])
    if not xs:
        return RankerTable(**{**RankerTable.empty().__dict__, "candidate_recall": hits / total if total else 0.0})
    return RankerTable(np.vstack(xs), np.concatenate(ys), np.array(groups, np.int64), hits / total if total else 0.0)


def train_ranker(lv2: Level, lv1: Level, rec2: TwoStageRecommender, settings: Settings,
                 progress: bool = True) -> RankerFit:
    """LambdaMART on level-2 candidates, early-stopped on level-1 candidates (same level-2 towers)."""
    t = time.perf_counter()
    rec1 = level1_recommender(lv1, rec2, settings)
    train = ranker_table(rec2, lv2, progress=progress, desc="ranker train table")
    valid = ranker_table(rec1, lv1, progress=progress, desc="ranker valid table")
    t_tables = time.perf_counter() - t
    t = time.perf_counter()
    ranker = fit_ranker(train, valid, settings)
    return RankerFit(ranker, train, valid, {"ranker_tables": t_tables, "train_ranker": time.perf_counter() - t})
