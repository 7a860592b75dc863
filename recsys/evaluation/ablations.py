"""What the quality report adds around the headline table: the SASRec baseline, the model's
paired difference to the best baseline, and ablations that reuse the trained models.

Each ablation is one run of the same code with one thing changed, on the same level-0 users:

* ``mmr``: the MMR diversity re-ranking at lambda 1.0 / 0.9 / 0.7 / 0.5 (NDCG@10 beside
  catalog coverage and intra-list genre diversity);
* ``cold_warm``: the two-stage model's NDCG@10 by the user's training-history length;
* ``no_ranker``: the two-tower channel alone through the index (the ranker's contribution);
* the candidate funnel at every stage is the report's ``funnel`` (two-tower recall@K, the
  merged candidates' recall, the ranked top-10's recall@10).

The ablations that retrain (without the co-occurrence channel, history length 10/200) are in
:mod:`recsys.evaluation.retrained`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys.constants import PRIMARY_MODEL
from recsys.evaluation.bootstrap import bootstrap_ci, paired_difference_ci
from recsys.evaluation.harness import LIST_LEN, Evaluation, _Scorer, batched
from recsys.evaluation.metrics import evaluate_lists

if TYPE_CHECKING:
    from recsys.config import Settings
    from recsys.training.run import TrainedModels

log = logging.getLogger(__name__)
BASELINES = ("popularity", "ease", "ials", "sasrec")
MMR_LAMBDAS = (1.0, 0.9, 0.7, 0.5)
HISTORY_BUCKETS = ((1, 20), (20, 50), (50, 150), (150, 10**9))


def add_sasrec(tm: TrainedModels, ev: Evaluation, settings: Settings) -> dict[str, Any]:
    """Fit SASRec (early stopping on level 2, refit on level 0) and score it like every model."""
    from recsys.training.sasrec import fit_sasrec

    assert tm.levels is not None, "train_models keeps the levels SASRec is fitted on"
    t = time.perf_counter()
    model, record = fit_sasrec(tm.levels, settings)
    ev.seconds["train_sasrec"] = time.perf_counter() - t
    lv = tm.level0
    t = time.perf_counter()
    _Scorer(lv, ev, settings.seed)("sasrec", batched(model.scores, lv.label_states(), lv.catalog), t)
    return record


def versus_best_baseline(ev: Evaluation, seed: int) -> dict[str, Any]:
    """The model's paired NDCG@10 difference to the best baseline (and to SASRec), users resampled."""
    ours = ev.per_user[PRIMARY_MODEL]["ndcg@10"]
    present = [b for b in BASELINES if b in ev.per_user]
    best = max(present, key=lambda b: ev.models[b]["ndcg@10"])
    out: dict[str, Any] = {"best_baseline": best}
    for name in dict.fromkeys([best, "sasrec"]):
        if name not in ev.per_user:
            continue
        d = paired_difference_ci(ours, ev.per_user[name]["ndcg@10"], seed=seed)
        base = ev.models[name]["ndcg@10"]
        out[name] = {"ndcg@10_diff": d.mean, "ndcg@10_diff_ci95": d.as_list(),
                     "relative": d.mean / base if base else None,
                     "relative_ci95": [d.low / base, d.high / base] if base else None}
    return out


def mmr_sweep(tm: TrainedModels) -> dict[str, dict[str, float]]:
    lv, rec = tm.level0, tm.recommender
    states = lv.label_states()
    out = {}
    for lam in MMR_LAMBDAS:
        lists: dict[int, list[int]] = {}
        for a in range(0, len(states), 512):
            chunk = states[a:a + 512]
            for s, r in zip(chunk, rec.recommend(chunk, k=LIST_LEN, mmr_lambda=lam)):
                lists[s.user_id] = r.item_ids.tolist()
        m = evaluate_lists(lists, lv.labels, len(lv.catalog), lv.catalog.genre_sets, ks=(10,))
        out[str(lam)] = {k: m[k] for k in ("ndcg@10", "recall@10", "coverage@10", "diversity@10")}
        log.info("mmr lambda %.1f: ndcg@10 %.4f coverage@10 %.4f diversity@10 %.4f", lam, m["ndcg@10"],
                 m["coverage@10"], m["diversity@10"])
    return out


def cold_warm(tm: TrainedModels, ev: Evaluation, seed: int) -> dict[str, dict[str, Any]]:
    """NDCG@10 of the model (and SASRec, EASE) by training-history length bucket."""
    lv = tm.level0
    n = np.array([lv.states[u].n_ratings for u in sorted(lv.labels)])
    out: dict[str, dict[str, Any]] = {}
    for lo, hi in HISTORY_BUCKETS:
        mask = (n >= lo) & (n < hi)
        if not mask.any():
            continue
        row: dict[str, Any] = {"users": int(mask.sum())}
        for name in (PRIMARY_MODEL, "sasrec", "ease"):
            if name in ev.per_user:
                ci = bootstrap_ci(ev.per_user[name]["ndcg@10"][mask], seed=seed)
                row[name] = {"ndcg@10": ci.mean, "ndcg@10_ci95": ci.as_list()}
        out[f"{lo}-{hi - 1}" if hi < 10**9 else f">={lo}"] = row
    return out


def ablations(tm: TrainedModels, ev: Evaluation, seed: int, mmr: bool = True) -> dict[str, Any]:
    t = time.perf_counter()
    out: dict[str, Any] = {
        "no_ranker": {"model": "two_tower", **{k: ev.models["two_tower"][k] for k in ("ndcg@10", "recall@10")}},
        "cold_warm": cold_warm(tm, ev, seed),
    }
    if mmr:
        out["mmr"] = mmr_sweep(tm)
    ev.seconds["ablations"] = time.perf_counter() - t
    return out
