"""Training of a model bundle, as three time-ordered levels of one split.

For a protocol, ``train`` / ``test`` come from :func:`recsys.split.split`. Two validation
levels are carved out of train the same way test was carved out of the full data:

* level 2: history = train minus two hold-outs, labels = the earlier hold-out (``val2``).
  The two-tower is fit here (early stopping on ``val2`` recall); the ranker's training table
  is built here.
* level 1: history = train minus one hold-out, labels = ``val`` (later in time than ``val2``):
  the ranker's early-stopping table (same level-2 towers, so no model saw these labels).
* level 0: history = all of train. The towers are refit for the best epoch count, the index,
  co-occurrence and item statistics rebuilt: this is the bundle that is evaluated on test and
  served. Test interactions never reach any feature.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recsys.catalog import Catalog
from recsys.config import Settings
from recsys.data import MovieLens
from recsys.features import UserState, build_item_table, build_user_table, user_states, with_genres
from recsys.ranking import FEATURES, Ranker, fit_ranker
from recsys.recommender import TwoStageRecommender
from recsys.retrieval.cooc import NextItemCooc
from recsys.retrieval.index import IndexStats, build_index
from recsys.retrieval.two_tower import TwoTower, train_two_tower
from recsys.split import split, validation_split

log = logging.getLogger(__name__)


@dataclass
class Level:
    """History (``train``) and held-out ``labels`` at one point in time."""

    train: pd.DataFrame
    catalog: Catalog
    user_table: pd.DataFrame
    states: dict[int, UserState]
    labels: dict[int, set[int]]

    def label_states(self) -> list[UserState]:
        return [self.states[u] for u in sorted(self.labels)]


def make_level(ml: MovieLens, train: pd.DataFrame, held: pd.DataFrame, history_len: int, items: np.ndarray | None = None) -> Level:
    table = build_item_table(ml.movies, train)
    if items is not None:
        table = table[table["item_id"].isin(items)]
    catalog = Catalog(table, ref_ts=int(train["timestamp"].max()))
    user_table = build_user_table(ml.users, with_genres(train, ml.movies), history_len)
    states = user_states(user_table)
    known = set(catalog.item_ids.tolist())
    labels = {}
    for u, items_u in held.groupby("user_id")["item_id"]:
        rel = set(items_u.tolist()) & known
        if rel and int(u) in states:
            labels[int(u)] = rel
    return Level(train, catalog, user_table, states, labels)


@dataclass
class TrainedModels:
    """What a training run produces: the level-0 recommender plus everything to report."""

    protocol: str
    recommender: TwoStageRecommender
    level0: Level
    index_stats: IndexStats
    two_tower_history: dict
    ranker: Ranker
    seconds: dict[str, float] = field(default_factory=dict)
    funnel: dict[str, float] = field(default_factory=dict)
    ranker_tables: dict = field(default_factory=dict)


def build_retrieval(level: Level, tt: TwoTower, settings: Settings, progress: bool) -> tuple[TwoStageRecommender, IndexStats]:
    """Index over the towers' item vectors plus the co-occurrence channel, for ``level``."""
    queries = tt.embed_users(level.label_states() or list(level.states.values())[:2000])
    index, stats = build_index(tt.item_embeddings(), queries, settings.top_k_candidates, settings.faiss_n_lists,
                               settings.faiss_n_probe, settings.faiss_target_recall, settings.faiss_exact_below, settings.seed)
    cooc = NextItemCooc(settings.cooc_window, settings.cooc_last_items).fit(level.train, level.catalog) if settings.cooc_candidates else None
    rec = TwoStageRecommender(level.catalog, tt, index, cooc, None, settings.top_k_candidates, settings.cooc_candidates,
                              settings.popular_candidates, settings.rank_candidates, settings.lgbm_num_threads)
    return rec, stats


def level1_recommender(lv1: Level, rec2: TwoStageRecommender, settings: Settings) -> TwoStageRecommender:
    """Level 1's candidates: level 2's towers and index (no model saw level-1 labels), level-1
    co-occurrence; level 1's catalog is level 2's (the towers know no other items)."""
    if not np.array_equal(lv1.catalog.item_ids, rec2.catalog.item_ids):
        raise ValueError("level 1 must be built with level 2's items (make_level(..., items=...))")
    cooc1 = NextItemCooc(settings.cooc_window, settings.cooc_last_items).fit(lv1.train, lv1.catalog) if settings.cooc_candidates else None
    return TwoStageRecommender(lv1.catalog, rec2.two_tower, rec2.index, cooc1, None, settings.top_k_candidates,
                               settings.cooc_candidates, settings.popular_candidates, settings.rank_candidates)


def ranker_table(rec: TwoStageRecommender, level: Level, batch: int = 512, progress: bool = True, desc: str = "ranker table") -> dict:
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
            y = np.isin(level.catalog.item_ids[c.idx], list(rel)).astype(np.float32)
            hits += int(y.sum())
            total += len(rel)
            if y.sum() > 0:
                xs.append(f)
                ys.append(y)
                groups.append(f.shape[0])
    return {
        "X": np.vstack(xs) if xs else np.zeros((0, len(FEATURES)), np.float32),
        "y": np.concatenate(ys) if ys else np.zeros(0, np.float32),
        "groups": np.array(groups, np.int64),
        "candidate_recall": hits / total if total else 0.0,
    }


def train_models(ml: MovieLens, protocol: str, settings: Settings, progress: bool = True) -> TrainedModels:
    """Fit two-tower, index, channels and ranker for ``protocol``; return the level-0 models."""
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    train, test = split(ml.ratings, protocol)
    inner, val = validation_split(train, protocol)
    inner2, val2 = validation_split(inner, protocol)
    lv2 = make_level(ml, inner2, val2, settings.history_len)
    lv1 = make_level(ml, inner, val, settings.history_len, items=lv2.catalog.item_ids)
    lv0 = make_level(ml, train, test, settings.history_len)
    seconds["split_and_features"] = time.perf_counter() - t

    t = time.perf_counter()
    tt2, hist2 = train_two_tower(lv2.train, lv2.catalog, lv2.user_table, settings, validation=(lv2.label_states(), lv2.labels), progress=progress)
    seconds["train_two_tower_validation"] = time.perf_counter() - t

    t = time.perf_counter()
    rec2, _ = build_retrieval(lv2, tt2, settings, progress)
    rec1 = level1_recommender(lv1, rec2, settings)
    tab2 = ranker_table(rec2, lv2, progress=progress, desc="ranker train table")
    tab1 = ranker_table(rec1, lv1, progress=progress, desc="ranker valid table")
    seconds["ranker_tables"] = time.perf_counter() - t
    t = time.perf_counter()
    ranker = fit_ranker((tab2["X"], tab2["y"], tab2["groups"]), (tab1["X"], tab1["y"], tab1["groups"]), settings)
    seconds["train_ranker"] = time.perf_counter() - t

    t = time.perf_counter()
    tt0, hist0 = train_two_tower(lv0.train, lv0.catalog, lv0.user_table, settings, epochs=max(1, hist2["best_epoch"]), progress=progress)
    seconds["train_two_tower"] = time.perf_counter() - t
    t = time.perf_counter()
    rec0, stats = build_retrieval(lv0, tt0, settings, progress)
    rec0.ranker = ranker
    seconds["build_index"] = time.perf_counter() - t
    hist2["final_epochs"] = hist0["epochs"][-1]
    return TrainedModels(
        protocol=protocol, recommender=rec0, level0=lv0, index_stats=stats, two_tower_history=hist2, ranker=ranker,
        seconds=seconds,
        funnel={"ranker_train_candidate_recall": tab2["candidate_recall"], "ranker_valid_candidate_recall": tab1["candidate_recall"]},
        ranker_tables={"train": tab2, "valid": tab1},
    )


def settings_record(settings: Settings) -> dict:
    """Settings as JSON-safe values (recorded in manifests and MLflow params)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in settings.model_dump().items() if k not in ("data_url", "data_md5", "cache_dir")}


def train_bundle(
    ml: MovieLens,
    out_dir: str | Path,
    settings: Settings,
    protocol: str = "user-temporal",
    evaluate: bool = True,
    baselines: bool = True,
    progress: bool = True,
) -> tuple[Path, dict]:
    """Train, evaluate on the protocol's test split and save a bundle; return (path, report)."""
    from recsys.bundle import save_bundle
    from recsys.evaluate import evaluate_all

    t = time.perf_counter()
    tm = train_models(ml, protocol, settings, progress=progress)
    report: dict = {"protocol": protocol, "seconds": dict(tm.seconds)}
    if evaluate:
        models, funnel, secs = evaluate_all(tm, settings, baselines=baselines)
        report.update(models=models, funnel=funnel)
        report["seconds"].update(secs)
    report["seconds"]["total"] = time.perf_counter() - t
    metrics = report.get("models", {}).get("two_tower+ranker", {})
    path = save_bundle(
        out_dir, tm.recommender, tm.level0.user_table, tm.index_stats, protocol=protocol,
        settings=settings_record(settings), data_fingerprint=ml.fingerprint(), metrics=metrics,
        ranker_features=tm.ranker_tables["train"]["X"],
        extra={"two_tower": {k: v for k, v in tm.two_tower_history.items() if k != "loss"}},
    )
    return path, report
