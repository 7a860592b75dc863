"""A whole training run in memory: the stages of :mod:`recsys.training.stages` composed.

Used by the quality benchmark and the tests; the KFP pipeline runs the same stages as
file-based steps (:mod:`recsys.training.steps`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys.constants import PRIMARY_MODEL
from recsys.data.movielens import InteractionData
from recsys.models.index import IndexStats
from recsys.models.ranker import Ranker
from recsys.models.recommender import TwoStageRecommender
from recsys.training.levels import Level, Levels, prepare_levels, serving_user_table
from recsys.training.stages import TowerFit, build_retrieval, train_ranker, train_towers

if TYPE_CHECKING:
    from recsys.config import Settings

EXCLUDED_SETTINGS = ("data_url", "data_md5", "cache_dir")  # where the data came from, not how the model was made


@dataclass
class TrainedModels:
    """What a training run hands to evaluation and packaging: the level-0 recommender (with its
    ranker) and what the report and the bundle record about how it was trained."""

    protocol: str
    level0: Level
    recommender: TwoStageRecommender
    index_stats: IndexStats
    two_tower_history: dict[str, Any]
    funnel: dict[str, float]
    ranker_sample: np.ndarray  # ranker training rows (the bundle's feature histograms)
    serving_users: pd.DataFrame  # the rows served and materialized (recsys.training.levels.serving_user_table)
    seconds: dict[str, float] = field(default_factory=dict)
    levels: Levels | None = None  # all three levels (the benchmark fits its sequential baseline on them)
    towers: TowerFit | None = None  # levels 2 and 0's towers (the benchmark's ablations reuse them)

    @property
    def ranker(self) -> Ranker:
        if self.recommender.ranker is None:
            raise ValueError("the training run has no ranker")
        return self.recommender.ranker


def train_models(data: InteractionData, protocol: str, settings: Settings, progress: bool = True,
                 towers: TowerFit | None = None) -> TrainedModels:
    """Fit two-tower, index, channels and ranker for ``protocol``; return the level-0 models.

    ``towers`` (from an earlier run with the same protocol and tower settings) skips the towers'
    training: the benchmark's ablations that change only what comes after them."""
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    levels = prepare_levels(data, protocol, settings.history_len)
    serving = serving_user_table(data, protocol, settings.history_len)
    seconds["split_and_features"] = time.perf_counter() - t
    if towers is None:
        towers = train_towers(levels.level2, levels.level0, settings, progress)
        seconds["train_two_tower_validation"] = towers.history["seconds_validation"]
        seconds["train_two_tower"] = towers.history["seconds_final"]
    t = time.perf_counter()
    rec2, _ = build_retrieval(levels.level2, towers.level2, settings)
    rec0, stats = build_retrieval(levels.level0, towers.level0, settings)
    seconds["build_index"] = time.perf_counter() - t
    ranked = train_ranker(levels.level2, levels.level1, rec2, settings, progress)
    seconds.update(ranked.seconds)
    rec0.ranker = ranked.ranker
    return TrainedModels(protocol, levels.level0, rec0, stats, towers.history, ranked.funnel, ranked.train.x, serving,
                         seconds, levels, towers)


def settings_record(settings: Settings) -> dict[str, Any]:
    """Settings as JSON-safe values (recorded in manifests and MLflow params)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in settings.model_dump().items()
            if k not in EXCLUDED_SETTINGS}


def save_trained(tm: TrainedModels, out_dir: str | Path, settings: Settings, data_fingerprint: str,
                 metrics: dict[str, float]) -> Path:
    """The model bundle of a training run (:func:`recsys.artifacts.bundle.save_bundle`)."""
    from recsys.artifacts.bundle import save_bundle
    from recsys.evaluation.gate import write_gate_set

    path = save_bundle(
        out_dir, tm.recommender, tm.serving_users, tm.index_stats, protocol=tm.protocol,
        settings=settings_record(settings), data_fingerprint=data_fingerprint, metrics=metrics,
        ranker_features=tm.ranker_sample,
        extra={"two_tower": {k: v for k, v in tm.two_tower_history.items() if k != "loss"}},
    )
    write_gate_set(tm.level0, path)  # the test users the registry gate compares challenger and champion on
    return path


def train_bundle(data: InteractionData, out_dir: str | Path, settings: Settings, protocol: str = "user-temporal",
                 evaluate: bool = True, baselines: bool = True, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Train, evaluate on the protocol's test split and save a bundle; return (path, report)."""
    from recsys.evaluation.harness import evaluate_models

    t = time.perf_counter()
    tm = train_models(data, protocol, settings, progress=progress)
    report: dict[str, Any] = {"protocol": protocol, "seconds": dict(tm.seconds)}
    if evaluate:
        ev = evaluate_models(tm.level0, tm.recommender, tm.index_stats, tm.funnel, settings, baselines=baselines)
        report.update(models=ev.models, funnel=ev.funnel)
        report["seconds"].update(ev.seconds)
    report["seconds"]["total"] = time.perf_counter() - t
    path = save_trained(tm, out_dir, settings, data.fingerprint(), report.get("models", {}).get(PRIMARY_MODEL, {}))
    return path, report
