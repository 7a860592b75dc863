"""The training run as file-based steps, one per pipeline component (plain Python, no kfp).

Each step reads the previous steps' output directories and writes its own; together they do
what :func:`recsys.train.train_bundle` does in memory, with the same functions (levels from
:func:`recsys.train.make_level`, retrieval from :func:`recsys.train.build_retrieval`, ranker
tables from :func:`recsys.train.ranker_table`, LambdaMART from :func:`recsys.ranking.fit_ranker`,
evaluation from :func:`recsys.evaluate.evaluate_all`, the bundle from
:func:`recsys.bundle.save_bundle`).

```
ingest/      ratings, movies, users, train, test (.parquet), meta.json
features/    level{2,1,0}/{history,held,items,users}.parquet, feast/{users,items}.parquet, meta.json
towers/      level2/ and level0/ (TwoTower.save), history.json
index/       level2/ and level0/ (index.faiss, index.json, cooc.npz)
ranker/      ranker.txt, ranker.json, ranker_features.npy (training sample for skew stats), funnel.json
bundle/      the model bundle (recsys/bundle.py) + report.json
```
Levels are rebuilt from their saved history / held-out parquet with ``make_level`` (cheap, and
identical by construction to what ``train_models`` builds).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import Settings
from recsys.data import MovieLens

log = logging.getLogger(__name__)

LEVELS = (2, 1, 0)
TABLES = ("ratings", "movies", "users", "train", "test")


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=float))


def _read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def _out(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def load_ingested(ingest_dir: str | Path) -> MovieLens:
    d = Path(ingest_dir)
    return MovieLens(pd.read_parquet(d / "ratings.parquet"), pd.read_parquet(d / "movies.parquet"), pd.read_parquet(d / "users.parquet"))


def load_level(ingest_dir: str | Path, features_dir: str | Path, level: int, ml: MovieLens | None = None):
    """Rebuild a :class:`recsys.train.Level` from the features step's files."""
    from recsys.train import make_level

    ml = ml or load_ingested(ingest_dir)
    meta = _read_json(Path(features_dir) / "meta.json")
    d = Path(features_dir) / f"level{level}"
    items = pd.read_parquet(Path(features_dir) / "level2" / "items.parquet")["item_id"].to_numpy() if level == 1 else None
    return make_level(ml, pd.read_parquet(d / "history.parquet"), pd.read_parquet(d / "held.parquet"), meta["history_len"], items=items)


def load_two_tower(towers_dir: str | Path, level: int, catalog):
    from recsys.retrieval.two_tower import TwoTower

    return TwoTower.load(Path(towers_dir) / f"level{level}", catalog)


def load_retrieval(ingest_dir, features_dir, towers_dir, index_dir, level: int, settings: Settings, ml: MovieLens | None = None, ranker=None):
    """(Level, TwoStageRecommender) of ``level`` from the towers and index steps' files."""
    from recsys.recommender import TwoStageRecommender
    from recsys.retrieval.cooc import NextItemCooc
    from recsys.retrieval.index import load_index

    lv = load_level(ingest_dir, features_dir, level, ml)
    tt = load_two_tower(towers_dir, level, lv.catalog)
    d = Path(index_dir) / f"level{level}"
    index, stats = load_index(d)
    cooc = NextItemCooc.load(d, settings.cooc_window, settings.cooc_last_items) if (d / "cooc.npz").exists() else None
    rec = TwoStageRecommender(lv.catalog, tt, index, cooc, ranker, settings.top_k_candidates, settings.cooc_candidates,
                              settings.popular_candidates, settings.rank_candidates, settings.lgbm_num_threads)
    return lv, rec, stats


# ---- steps ----------------------------------------------------------------------------------
def ingest(data_dir: str | Path | None, out_dir: str | Path, protocol: str = "user-temporal") -> dict:
    """Read (or download) GroupLens ml-1m, split it by ``protocol``; write the tables."""
    from recsys.data import load_movielens, resolve_data_dir
    from recsys.split import split

    t = time.perf_counter()
    out = _out(out_dir)
    src = resolve_data_dir(data_dir or None)
    ml = load_movielens(src)
    train, test = split(ml.ratings, protocol)
    for name, df in zip(TABLES, (ml.ratings, ml.movies, ml.users, train, test)):
        df.to_parquet(out / f"{name}.parquet", index=False)
    meta = {
        "source": str(src), "protocol": protocol, "data_fingerprint": ml.fingerprint(),
        "n_ratings": len(ml.ratings), "n_users": int(ml.ratings["user_id"].nunique()), "n_items": int(ml.ratings["item_id"].nunique()),
        "n_train": len(train), "n_test": len(test), "seconds": time.perf_counter() - t,
    }
    _write_json(out / "meta.json", meta)
    return meta


def features(ingest_dir: str | Path, out_dir: str | Path, history_len: int) -> dict:
    """The three time-ordered levels (recsys/train.py) and the Feast offline sources (level 0)."""
    from recsys.feature_store import write_offline
    from recsys.split import validation_split
    from recsys.train import make_level

    t = time.perf_counter()
    out = _out(out_dir)
    meta_in = _read_json(Path(ingest_dir) / "meta.json")
    protocol = meta_in["protocol"]
    ml = load_ingested(ingest_dir)
    train, test = pd.read_parquet(Path(ingest_dir) / "train.parquet"), pd.read_parquet(Path(ingest_dir) / "test.parquet")
    inner, val = validation_split(train, protocol)
    inner2, val2 = validation_split(inner, protocol)
    splits = {2: (inner2, val2), 1: (inner, val), 0: (train, test)}
    meta: dict = {"protocol": protocol, "history_len": history_len, "data_fingerprint": meta_in["data_fingerprint"], "levels": {}}
    items2 = None
    for k in LEVELS:
        hist, held = splits[k]
        lv = make_level(ml, hist, held, history_len, items=items2 if k == 1 else None)
        if k == 2:
            items2 = lv.catalog.item_ids
        d = _out(out / f"level{k}")
        hist.to_parquet(d / "history.parquet", index=False)
        held.to_parquet(d / "held.parquet", index=False)
        lv.catalog.table.to_parquet(d / "items.parquet", index=False)
        lv.user_table.to_parquet(d / "users.parquet", index=False)
        meta["levels"][str(k)] = {"n_history": len(hist), "n_held": len(held), "n_items": len(lv.catalog),
                                  "n_users": len(lv.user_table), "n_labelled_users": len(lv.labels), "ref_ts": lv.catalog.ref_ts}
        if k == 0:
            write_offline(lv.user_table, lv.catalog.table, out / "feast")
    meta["seconds"] = time.perf_counter() - t
    _write_json(out / "meta.json", meta)
    return meta


def train_two_tower(ingest_dir: str | Path, features_dir: str | Path, out_dir: str | Path, settings: Settings, progress: bool = False) -> dict:
    """Level-2 towers with early stopping on val2 recall, then level-0 towers for the best epoch count."""
    from recsys.retrieval.two_tower import train_two_tower as fit

    t = time.perf_counter()
    out = _out(out_dir)
    ml = load_ingested(ingest_dir)
    lv2 = load_level(ingest_dir, features_dir, 2, ml)
    tt2, hist2 = fit(lv2.train, lv2.catalog, lv2.user_table, settings, validation=(lv2.label_states(), lv2.labels), progress=progress)
    tt2.save(_out(out / "level2"))
    t2 = time.perf_counter() - t
    lv0 = load_level(ingest_dir, features_dir, 0, ml)
    tt0, hist0 = fit(lv0.train, lv0.catalog, lv0.user_table, settings, epochs=max(1, hist2["best_epoch"]), progress=progress)
    tt0.save(_out(out / "level0"))
    hist2["final_epochs"] = hist0["epochs"][-1]
    history = {k: v for k, v in hist2.items() if k != "loss"}
    history["seconds_validation"] = t2
    history["seconds"] = time.perf_counter() - t
    _write_json(out / "history.json", history)
    return history


def build_index(ingest_dir, features_dir, towers_dir, out_dir, settings: Settings, progress: bool = False) -> dict:
    """FAISS index (nprobe tuned to the recall target) and co-occurrence channel, levels 2 and 0."""
    from recsys.retrieval.index import save_index
    from recsys.train import build_retrieval

    t = time.perf_counter()
    out = _out(out_dir)
    ml = load_ingested(ingest_dir)
    stats_out = {}
    for k in (2, 0):
        lv = load_level(ingest_dir, features_dir, k, ml)
        rec, stats = build_retrieval(lv, load_two_tower(towers_dir, k, lv.catalog), settings, progress)
        d = _out(out / f"level{k}")
        save_index(rec.index, stats, d)
        if rec.cooc is not None:
            rec.cooc.save(d)
        stats_out[f"level{k}"] = {"kind": stats.kind, "nlist": stats.nlist, "nprobe": stats.nprobe,
                                  "recall_at_k_vs_exact": stats.recall_at_k_vs_exact}
    stats_out["seconds"] = time.perf_counter() - t
    _write_json(out / "stats.json", stats_out)
    return stats_out


def train_ranker(ingest_dir, features_dir, towers_dir, index_dir, out_dir, settings: Settings, progress: bool = False) -> dict:
    """LambdaMART on level-2 candidates, early-stopped on level-1 candidates (same level-2 towers)."""
    from recsys.ranking import fit_ranker
    from recsys.train import level1_recommender, ranker_table

    t = time.perf_counter()
    out = _out(out_dir)
    ml = load_ingested(ingest_dir)
    lv2, rec2, _ = load_retrieval(ingest_dir, features_dir, towers_dir, index_dir, 2, settings, ml)
    lv1 = load_level(ingest_dir, features_dir, 1, ml)
    rec1 = level1_recommender(lv1, rec2, settings)
    tab2 = ranker_table(rec2, lv2, progress=progress, desc="ranker train table")
    tab1 = ranker_table(rec1, lv1, progress=progress, desc="ranker valid table")
    t_tables = time.perf_counter() - t
    ranker = fit_ranker((tab2["X"], tab2["y"], tab2["groups"]), (tab1["X"], tab1["y"], tab1["groups"]), settings)
    ranker.save(out)
    np.save(out / "ranker_features.npy", tab2["X"])
    funnel = {"ranker_train_candidate_recall": tab2["candidate_recall"], "ranker_valid_candidate_recall": tab1["candidate_recall"]}
    _write_json(out / "funnel.json", funnel)
    info = {**{k: v for k, v in ranker.info.items() if k != "params"}, **funnel,
            "seconds_tables": t_tables, "seconds": time.perf_counter() - t}
    _write_json(out / "info.json", info)
    return info


def evaluate(ingest_dir, features_dir, towers_dir, index_dir, ranker_dir, out_dir, settings: Settings,
             baselines: bool = True) -> tuple[Path, dict]:
    """Level-0 recommender vs the baselines on the test split; save the bundle; (bundle path, report)."""
    from recsys.bundle import save_bundle
    from recsys.evaluate import evaluate_all
    from recsys.ranking import Ranker
    from recsys.train import TrainedModels, settings_record

    t = time.perf_counter()
    ingest_meta = _read_json(Path(ingest_dir) / "meta.json")
    ranker = Ranker.load(Path(ranker_dir))
    lv0, rec0, stats = load_retrieval(ingest_dir, features_dir, towers_dir, index_dir, 0, settings, ranker=ranker)
    history = _read_json(Path(towers_dir) / "history.json")
    funnel = _read_json(Path(ranker_dir) / "funnel.json")
    ranker_x = np.load(Path(ranker_dir) / "ranker_features.npy")
    tm = TrainedModels(protocol=ingest_meta["protocol"], recommender=rec0, level0=lv0, index_stats=stats,
                       two_tower_history=history, ranker=ranker, funnel=funnel, ranker_tables={"train": {"X": ranker_x}})
    models, funnel_all, secs = evaluate_all(tm, settings, baselines=baselines)
    report = {"protocol": tm.protocol, "models": models, "funnel": funnel_all, "seconds": secs}
    metrics = models.get("two_tower+ranker", {})
    path = save_bundle(
        out_dir, rec0, lv0.user_table, stats, protocol=tm.protocol, settings=settings_record(settings),
        data_fingerprint=ingest_meta["data_fingerprint"], metrics=metrics, ranker_features=ranker_x,
        extra={"two_tower": history},
    )
    report["seconds"]["evaluate"] = time.perf_counter() - t
    report["version"] = _read_json(path / "manifest.json")["version"]
    # Outside the manifest's file list: a bundle stays loadable and verifiable with it.
    _write_json(path / "report.json", report)
    return path, report


def skew_check(bundle_dir: str | Path, serving: pd.DataFrame, threshold: float) -> dict:
    """KL per user feature between the bundle's training histograms and a serving-time sample.

    ``serving`` is a user table (e.g. rows read from the online store). Returns
    ``{"kl": {...}, "flagged": [...], "skewed": bool, "threshold": t, "n": rows}``.
    """
    from recsys.bundle import user_feature_values
    from recsys.skew import detect_skew

    stats = _read_json(Path(bundle_dir) / "feature_stats.json")
    kl, flagged, any_ = detect_skew(stats["user"], user_feature_values(serving), threshold)
    return {"kl": kl, "flagged": flagged, "skewed": any_, "threshold": threshold, "n": int(len(serving))}


def online_skew(bundle_dir: str | Path, store, threshold: float, sample_size: int = 500, seed: int = 0) -> dict:
    """:func:`skew_check` on ``sample_size`` of the bundle's users read back from the online store."""
    from recsys.feature_store import get_user_features

    users = pd.read_parquet(Path(bundle_dir) / "users.parquet", columns=["user_id"])["user_id"]
    ids = users.sample(min(sample_size, len(users)), random_state=seed).astype(int).tolist()
    rows = [r for r in get_user_features(store, ids).values() if r is not None]
    out = skew_check(bundle_dir, pd.DataFrame(rows), threshold) if rows else {"kl": {}, "flagged": [], "skewed": True, "threshold": threshold, "n": 0}
    out["missing"] = len(ids) - len(rows)
    return out


def settings_with(**overrides) -> Settings:
    """Settings from the environment, with the pipeline's parameters on top (0 / None / "" = keep)."""
    return Settings(**{k: v for k, v in overrides.items() if v not in (None, 0, "")})
