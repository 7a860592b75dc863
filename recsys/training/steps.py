"""The training run as file-based steps, one per pipeline component (plain Python, no kfp).

Each step loads the previous steps' output directories, calls the stage of
:mod:`recsys.training.stages` (the same functions :func:`recsys.training.run.train_models`
composes in memory) and writes its own directory:

```
ingest/      interactions, items, users, train, test (.parquet), meta.json
features/    level{2,1,0}/{history,held,items,users}.parquet, serving/users.parquet, feast/{users,items}.parquet,
             meta.json
towers/      level2/ and level0/ (TwoTower.save), history.json
index/       level2/ and level0/ (index.faiss, index.json, cooc.npz), stats.json
ranker/      ranker.txt, ranker.json, ranker_features.npy (training rows), funnel.json, info.json
report/      report.json: every model's metrics on the test split, the funnel, seconds
bundle/      the model bundle (recsys/artifacts/bundle.py) + report.json
```
Levels are rebuilt from their saved history / held-out parquet with ``make_level`` (cheap, and
identical by construction to what ``train_models`` builds).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import Settings
from recsys.data.movielens import InteractionData
from recsys.training.levels import LEVELS, Level, make_level

TABLES = ("interactions", "items", "users", "train", "test")
PathLike = str | Path


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=float))


def _read_json(path: PathLike) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def _out(out_dir: PathLike) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def settings_with(**overrides: Any) -> Settings:
    """Settings from the environment, with the pipeline's parameters on top (None = keep)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


# ---- loading what earlier steps wrote --------------------------------------------------------
def load_ingested(ingest_dir: PathLike) -> InteractionData:
    d = Path(ingest_dir)
    return InteractionData(*(pd.read_parquet(d / f"{name}.parquet") for name in TABLES[:3]))


def load_level(ingest_dir: PathLike, features_dir: PathLike, level: int, data: InteractionData | None = None) -> Level:
    """Rebuild a :class:`~recsys.training.levels.Level` from the features step's files."""
    data = data or load_ingested(ingest_dir)
    meta = _read_json(Path(features_dir) / "meta.json")
    d = Path(features_dir) / f"level{level}"
    items = (
        pd.read_parquet(Path(features_dir) / "level2" / "items.parquet")["item_id"].to_numpy() if level == 1 else None
    )
    return make_level(data, pd.read_parquet(d / "history.parquet"), pd.read_parquet(d / "held.parquet"),
                      meta["history_len"], items=items)


def load_retrieval(
    ingest_dir: PathLike,
    features_dir: PathLike,
    towers_dir: PathLike,
    index_dir: PathLike,
    level: int,
    settings: Settings,
    data: InteractionData | None = None,
    ranker_dir: PathLike | None = None,
):
    """(Level, TwoStageRecommender, IndexStats) of ``level`` from the towers / index (/ ranker) steps' files."""
    from recsys.models.cooc import NextItemCooc
    from recsys.models.index import load_index
    from recsys.models.ranker import Ranker
    from recsys.models.two_tower import TwoTower
    from recsys.training.stages import recommender_for

    lv = load_level(ingest_dir, features_dir, level, data)
    tt = TwoTower.load(Path(towers_dir) / f"level{level}", lv.catalog)
    d = Path(index_dir) / f"level{level}"
    index, stats = load_index(d)
    cooc = NextItemCooc.load(d, settings.cooc_window, settings.cooc_last_items) if (d / "cooc.npz").exists() else None
    ranker = Ranker.load(Path(ranker_dir)) if ranker_dir is not None else None
    return lv, recommender_for(lv, tt, index, cooc, settings, ranker), stats


def load_trained(ingest_dir: PathLike, features_dir: PathLike, towers_dir: PathLike, index_dir: PathLike,
                 ranker_dir: PathLike, settings: Settings):
    """The level-0 :class:`~recsys.training.run.TrainedModels` from the training steps' files."""
    from recsys.training.run import TrainedModels

    protocol = _read_json(Path(ingest_dir) / "meta.json")["protocol"]
    lv0, rec0, stats = load_retrieval(
        ingest_dir, features_dir, towers_dir, index_dir, 0, settings, ranker_dir=ranker_dir
    )
    return TrainedModels(
        protocol,
        lv0,
        rec0,
        stats,
        _read_json(Path(towers_dir) / "history.json"),
        _read_json(Path(ranker_dir) / "funnel.json"),
        np.load(Path(ranker_dir) / "ranker_features.npy"),
        pd.read_parquet(Path(features_dir) / "serving" / "users.parquet"),
    )


# ---- steps ----------------------------------------------------------------------------------
def ingest(data_dir: PathLike | None, out_dir: PathLike, protocol: str = "user-temporal",
           events_dir: PathLike | None = None, events_until: int | None = None) -> dict[str, Any]:
    """Read (or download) the data -- GroupLens files or a team's own interaction log -- add the
    archived events before ``events_until`` (default now) when ``events_dir`` is given, split
    by ``protocol``; write the tables."""
    from recsys.data.interactions import load_data, merge_events
    from recsys.data.movielens import resolve_data_dir
    from recsys.data.splits import split
    from recsys.online.archive import read_archive

    t = time.perf_counter()
    out = _out(out_dir)
    src = resolve_data_dir(data_dir or None)
    data = load_data(src)
    n_base = len(data.interactions)
    if events_dir:
        events_until = int(events_until if events_until is not None else time.time())
        data = merge_events(data, read_archive(events_dir), events_until)
    train, test = split(data.interactions, protocol)
    for name, df in zip(TABLES, (data.interactions, data.items, data.users, train, test)):
        df.to_parquet(out / f"{name}.parquet", index=False)
    meta = {
        "source": str(src), "protocol": protocol, "data_fingerprint": data.fingerprint(),
        "n_interactions": len(data.interactions), "n_users": int(data.interactions["user_id"].nunique()),
        "n_items": int(data.interactions["item_id"].nunique()), "n_train": len(train), "n_test": len(test),
        "n_events": len(data.interactions) - n_base, "events_dir": str(events_dir or ""),
        "events_until": events_until, "seconds": time.perf_counter() - t,
    }
    _write_json(out / "meta.json", meta)
    return meta


def features(ingest_dir: PathLike, out_dir: PathLike, history_len: int) -> dict[str, Any]:
    """The three time-ordered levels (recsys/training/levels.py) and the Feast offline sources (level 0)."""
    from recsys.online.feature_store import write_offline
    from recsys.training.levels import level_splits, make_levels, serving_user_table

    t = time.perf_counter()
    out = _out(out_dir)
    meta_in = _read_json(Path(ingest_dir) / "meta.json")
    protocol = meta_in["protocol"]
    data = load_ingested(ingest_dir)
    splits = level_splits(pd.read_parquet(Path(ingest_dir) / "train.parquet"),
                          pd.read_parquet(Path(ingest_dir) / "test.parquet"), protocol)
    levels = make_levels(data, splits, protocol, history_len)
    meta: dict[str, Any] = {"protocol": protocol, "history_len": history_len,
                            "data_fingerprint": meta_in["data_fingerprint"], "levels": {}}
    for k in LEVELS:
        hist, held = splits[k]
        lv = getattr(levels, f"level{k}")
        d = _out(out / f"level{k}")
        hist.to_parquet(d / "history.parquet", index=False)
        held.to_parquet(d / "held.parquet", index=False)
        lv.catalog.table.to_parquet(d / "items.parquet", index=False)
        lv.user_table.to_parquet(d / "users.parquet", index=False)
        meta["levels"][str(k)] = {"n_history": len(hist), "n_held": len(held), "n_items": len(lv.catalog),
                                  "n_users": len(lv.user_table), "n_labelled_users": len(lv.labels),
                                  "ref_ts": lv.catalog.ref_ts}
    serving = serving_user_table(data, protocol, history_len)
    _out(out / "serving")
    serving.to_parquet(out / "serving" / "users.parquet", index=False)
    write_offline(serving, levels.level0.catalog.table, out / "feast")
    meta["seconds"] = time.perf_counter() - t
    _write_json(out / "meta.json", meta)
    return meta


def train_two_tower(ingest_dir: PathLike, features_dir: PathLike, out_dir: PathLike, settings: Settings,
                    progress: bool = False) -> dict[str, Any]:
    """:func:`~recsys.training.stages.train_towers` on levels 2 and 0."""
    from recsys.training.stages import train_towers

    t = time.perf_counter()
    out = _out(out_dir)
    data = load_ingested(ingest_dir)
    towers = train_towers(load_level(ingest_dir, features_dir, 2, data), load_level(ingest_dir, features_dir, 0, data),
                          settings, progress)
    towers.level2.save(_out(out / "level2"))
    towers.level0.save(_out(out / "level0"))
    history = {k: v for k, v in towers.history.items() if k != "loss"}
    history["seconds"] = time.perf_counter() - t
    _write_json(out / "history.json", history)
    return history


def build_index(ingest_dir: PathLike, features_dir: PathLike, towers_dir: PathLike, out_dir: PathLike,
                settings: Settings) -> dict[str, Any]:
    """:func:`~recsys.training.stages.build_retrieval` (FAISS index + co-occurrence) of levels 2 and 0."""
    from recsys.models.index import save_index
    from recsys.models.two_tower import TwoTower
    from recsys.training.stages import build_retrieval

    t = time.perf_counter()
    out = _out(out_dir)
    data = load_ingested(ingest_dir)
    stats_out: dict[str, Any] = {}
    for k in (2, 0):
        lv = load_level(ingest_dir, features_dir, k, data)
        rec, stats = build_retrieval(lv, TwoTower.load(Path(towers_dir) / f"level{k}", lv.catalog), settings)
        d = _out(out / f"level{k}")
        save_index(rec.index, stats, d)
        if rec.cooc is not None:
            rec.cooc.save(d)
        stats_out[f"level{k}"] = {"kind": stats.kind, "nlist": stats.nlist, "nprobe": stats.nprobe,
                                  "recall_at_k_vs_exact": stats.recall_at_k_vs_exact}
    stats_out["seconds"] = time.perf_counter() - t
    _write_json(out / "stats.json", stats_out)
    return stats_out


def train_ranker(ingest_dir: PathLike, features_dir: PathLike, towers_dir: PathLike, index_dir: PathLike,
                 out_dir: PathLike, settings: Settings, progress: bool = False) -> dict[str, Any]:
    """:func:`~recsys.training.stages.train_ranker` on the level-2 retrieval and level-1 labels."""
    from recsys.training.stages import train_ranker as fit

    t = time.perf_counter()
    out = _out(out_dir)
    data = load_ingested(ingest_dir)
    lv2, rec2, _ = load_retrieval(ingest_dir, features_dir, towers_dir, index_dir, 2, settings, data)
    ranked = fit(lv2, load_level(ingest_dir, features_dir, 1, data), rec2, settings, progress)
    ranked.ranker.save(out)
    np.save(out / "ranker_features.npy", ranked.train.x)
    _write_json(out / "funnel.json", ranked.funnel)
    info = {**{k: v for k, v in ranked.ranker.info.items() if k != "params"}, **ranked.funnel,
            "seconds_tables": ranked.seconds["ranker_tables"], "seconds": time.perf_counter() - t}
    _write_json(out / "info.json", info)
    return info


def evaluate(ingest_dir: PathLike, features_dir: PathLike, towers_dir: PathLike, index_dir: PathLike,
             ranker_dir: PathLike, out_dir: PathLike, settings: Settings, baselines: bool = True) -> dict[str, Any]:
    """The level-0 two-stage model and the baselines on the test split -> ``report.json``."""
    from recsys.evaluation.harness import evaluate_models

    t = time.perf_counter()
    tm = load_trained(ingest_dir, features_dir, towers_dir, index_dir, ranker_dir, settings)
    ev = evaluate_models(tm.level0, tm.recommender, tm.index_stats, tm.funnel, settings, baselines=baselines)
    report = {"protocol": tm.protocol, "models": ev.models, "funnel": ev.funnel,
              "seconds": {**ev.seconds, "evaluate": time.perf_counter() - t}}
    _write_json(_out(out_dir) / "report.json", report)
    return report


def package(
    ingest_dir: PathLike,
    features_dir: PathLike,
    towers_dir: PathLike,
    index_dir: PathLike,
    ranker_dir: PathLike,
    report_dir: PathLike,
    out_dir: PathLike,
    settings: Settings,
) -> tuple[Path, dict[str, Any]]:
    """The model bundle of the level-0 models, with the evaluation's metrics; (bundle path, report)."""
    from recsys.constants import PRIMARY_MODEL
    from recsys.training.run import save_trained

    tm = load_trained(ingest_dir, features_dir, towers_dir, index_dir, ranker_dir, settings)
    report = _read_json(Path(report_dir) / "report.json")
    fingerprint = _read_json(Path(ingest_dir) / "meta.json")["data_fingerprint"]
    path = save_trained(tm, out_dir, settings, fingerprint, report["models"].get(PRIMARY_MODEL, {}))
    report["version"] = _read_json(path / "manifest.json")["version"]
    # Outside the manifest's file list: a bundle stays loadable and verifiable with it.
    _write_json(path / "report.json", report)
    return path, report
