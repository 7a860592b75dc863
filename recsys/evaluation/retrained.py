"""Ablations that retrain: each one run of the same training code with one setting changed, scored
on the same level-0 users as the main run and compared with it paired (users resampled).

* ``no_cooc``: the co-occurrence channel off (``cooc_candidates=0``). The towers are the main
  run's (the channel takes no part in their training); the index, the candidates (two-tower
  alone) and the ranker are rebuilt and retrained on them.
* ``history_len_<n>``: the user tower's history length changed (:data:`HISTORY_LENGTHS` against
  the main run's ``history_len``): levels, towers with their own early stopping, index, channels
  and ranker all retrained.

They cost a training each (history length 200 alone ~12 minutes on ML-1M-half), so the benchmark
runs them only where asked (``--retrain-ablations user-temporal``, ``make benchmark-quality
RETRAIN_ABLATIONS=user-temporal``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from recsys.constants import PRIMARY_MODEL
from recsys.evaluation.bootstrap import paired_difference_ci
from recsys.evaluation.harness import Evaluation, evaluate_models
from recsys.training.run import train_models

if TYPE_CHECKING:
    from recsys.config import Settings
    from recsys.data.movielens import InteractionData
    from recsys.training.run import TrainedModels
    from recsys.training.stages import TowerFit

log = logging.getLogger(__name__)
HISTORY_LENGTHS = (10, 50, 200)  # with the main run's own length: reported from the main run, not retrained


def summary(e: Evaluation) -> dict[str, Any]:
    """A run's row: the two-stage NDCG@10 (with its interval), recall@10, the two-tower channel
    alone and the merged candidates' recall."""
    m = e.models[PRIMARY_MODEL]
    return {"ndcg@10": m["ndcg@10"], "ndcg@10_ci95": m["ndcg@10_ci95"], "recall@10": m["recall@10"],
            "two_tower_ndcg@10": e.models["two_tower"]["ndcg@10"],
            "merged_candidates_recall": e.funnel.get("merged_candidates_recall")}


def compare(variant: Evaluation, main: Evaluation, seed: int) -> dict[str, Any]:
    """The variant's row and its paired NDCG@10 difference to the main run."""
    d = paired_difference_ci(variant.per_user[PRIMARY_MODEL]["ndcg@10"], main.per_user[PRIMARY_MODEL]["ndcg@10"],
                             seed=seed)
    return {**summary(variant), "ndcg@10_diff_vs_main": d.mean, "ndcg@10_diff_ci95": d.as_list()}


def _run(data: InteractionData, tm: TrainedModels, ev: Evaluation, settings: Settings, progress: bool,
         towers: TowerFit | None = None) -> dict[str, Any]:
    t = time.perf_counter()
    variant = train_models(data, tm.protocol, settings, progress=progress, towers=towers)
    vev = evaluate_models(variant.level0, variant.recommender, variant.index_stats, variant.funnel, settings,
                          baselines=False)
    out = compare(vev, ev, settings.seed)
    out["seconds"] = time.perf_counter() - t
    if towers is None:  # trained here, with their own early stopping
        out["two_tower_best_epoch"] = variant.two_tower_history["best_epoch"]
    log.info("ablation: ndcg@10 %.4f, %+.4f vs the main run [%+.4f, %+.4f] (%.0f s)", out["ndcg@10"],
             out["ndcg@10_diff_vs_main"], *out["ndcg@10_diff_ci95"], out["seconds"])
    return out


def retrained_ablations(data: InteractionData, tm: TrainedModels, ev: Evaluation, settings: Settings,
                        progress: bool = True) -> dict[str, Any]:
    """``no_cooc`` and ``history_len_<n>`` for the protocol ``tm`` was trained on (see the module)."""
    out: dict[str, Any] = {}
    if settings.cooc_candidates:
        log.info("%s: ablation without the co-occurrence channel (ranker retrained)", tm.protocol)
        out["no_cooc"] = _run(data, tm, ev, settings.model_copy(update={"cooc_candidates": 0}), progress,
                              towers=tm.towers)
    for n in sorted({*HISTORY_LENGTHS, settings.history_len}):
        key = f"history_len_{n}"
        if n == settings.history_len:
            out[key] = {**summary(ev), "main_run": True}
            continue
        log.info("%s: ablation with history length %d (everything retrained)", tm.protocol, n)
        out[key] = _run(data, tm, ev, settings.model_copy(update={"history_len": n}), progress)
    return out
