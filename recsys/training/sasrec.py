"""Fitting the SASRec baseline on the levels, the way the two-tower is fit.

Level 2: train on its history with early stopping on NDCG@10 of its held-out labels (the
project's metric functions, seen items removed). Level 0: refit on all of train for the best
epoch count; that model is what the harness evaluates on test.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys.evaluation.metrics import ndcg_at_k
from recsys.models.base import top_k_indices
from recsys.models.sasrec import SASRec, SASRecConfig
from recsys.training.levels import Level, Levels

if TYPE_CHECKING:
    from recsys.config import Settings

VALIDATION_K = 10
BATCH = 1024


def level_ndcg(model: SASRec, level: Level, k: int = VALIDATION_K) -> float:
    """Mean NDCG@k of ``model`` over ``level``'s labelled users (their seen items excluded)."""
    states = level.label_states()
    values = []
    for a in range(0, len(states), BATCH):
        chunk = states[a:a + BATCH]
        scores = model.scores(chunk)
        for row, s in enumerate(chunk):
            top = top_k_indices(scores[row], level.catalog.indices(s.seen_items), k)
            values.append(ndcg_at_k(level.catalog.item_ids[top].tolist(), level.labels[s.user_id], k))
    return float(np.mean(values)) if values else 0.0


def fit_on_validation(level: Level, config: SASRecConfig) -> SASRec:
    """SASRec trained on ``level``'s history, early-stopped on its labels (best epoch's weights)."""
    return SASRec(config).fit(level.train, level.catalog, list(level.states.values()),
                              validate=lambda m: level_ndcg(m, level))


def fit_sasrec(levels: Levels, settings: Settings, **overrides: Any) -> tuple[SASRec, dict[str, Any]]:
    """Early stopping on level 2, then the level-0 model refit for the best epoch count.

    ``overrides`` replace :class:`~recsys.models.sasrec.SASRecConfig` fields (the tuned ones).
    Returns the level-0 model (score it on level 0's label states) and a record:
    hyper-parameters, ``best_epoch``, ``val_ndcg@10`` per epoch, ``best_val_ndcg@10``,
    ``seconds_per_epoch``, ``seconds_validation``, ``seconds_final`` and ``train_seconds``.
    """
    config = SASRecConfig.from_settings(settings, **overrides)
    t = time.perf_counter()
    val = fit_on_validation(levels.level2, config)
    seconds_validation = time.perf_counter() - t
    best_epoch = max(1, int(val.history["best_epoch"]))
    t = time.perf_counter()
    final = SASRec(config).fit(levels.level0.train, levels.level0.catalog, list(levels.level0.states.values()),
                               epochs=best_epoch)
    seconds_final = time.perf_counter() - t
    record = {
        "hyper_parameters": config.record(),
        "best_epoch": best_epoch,
        "epochs_run": val.history["epochs"],
        "val_ndcg@10": val.history["val_ndcg@10"],
        "best_val_ndcg@10": val.history["best_val_ndcg10"],
        "loss": val.history["loss"],
        "seconds_per_epoch": float(np.mean(val.history["epoch_seconds"])),
        "seconds_validation": seconds_validation,
        "seconds_final": seconds_final,
        "train_seconds": seconds_validation + seconds_final,
    }
    final.history["fit_record"] = record
    return final, record
