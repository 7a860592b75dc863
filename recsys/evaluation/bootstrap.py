"""Paired bootstrap confidence intervals over users: the one implementation behind the quality
report's intervals, the registry gate and the A/B analysis.

A metric is a mean over users, so its uncertainty is that of which users happened to be in the
test set: resample users with replacement (``n_resamples`` times, seeded), recompute the mean,
and take the percentiles. For a difference between two models the *same* resampled users score
both (paired), so what the users share cancels and the interval is much narrower than two
separate intervals would suggest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recsys.evaluation.metrics import hit_rate_at_k, mrr, ndcg_at_k, recall_at_k

N_RESAMPLES = 1000
CONFIDENCE = 0.95
CHUNK = 200  # resamples per vectorized step (bounds memory at CHUNK x n_users indices)
HEADLINE = ("ndcg@10", "recall@10", "hr@10", "mrr")


@dataclass(frozen=True)
class Interval:
    """A mean and its percentile-bootstrap interval."""

    mean: float
    low: float
    high: float
    n: int

    def as_list(self) -> list[float]:
        return [self.low, self.high]

    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0


def _resampled_means(values: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of ``values`` (users x columns) over ``n_resamples`` user resamples -> (n_resamples, columns)."""
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    out = np.empty((n_resamples, values.shape[1]))
    for a in range(0, n_resamples, CHUNK):
        b = min(n_resamples, a + CHUNK)
        idx = rng.integers(0, n, size=(b - a, n))
        out[a:b] = values[idx].mean(axis=1)
    return out


def _interval(point: float, means: np.ndarray, n: int, confidence: float) -> Interval:
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return Interval(float(point), float(low), float(high), n)


def bootstrap_ci(values: Sequence[float] | np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0,
                 confidence: float = CONFIDENCE) -> Interval:
    """The mean of per-user ``values`` and its ``confidence`` interval."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("bootstrap_ci: no values")
    means = _resampled_means(v[:, None], n_resamples, seed)[:, 0]
    return _interval(float(v.mean()), means, v.size, confidence)


def paired_difference_ci(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                         n_resamples: int = N_RESAMPLES, seed: int = 0, confidence: float = CONFIDENCE) -> Interval:
    """mean(a - b) over the same users (aligned arrays) and its interval, resampling users jointly."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired_difference_ci: arrays of different users ({x.shape} vs {y.shape})")
    return bootstrap_ci(x - y, n_resamples, seed, confidence)


def per_user_metrics(lists: Mapping[int, Sequence[int]], labels: Mapping[int, set[int]],
                     users: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """The headline metrics of each user (sorted user ids unless ``users`` is given; a missing
    list counts as empty), the values :func:`recsys.evaluation.metrics.evaluate_lists` averages."""
    order = sorted(labels) if users is None else list(users)
    ranked = [list(lists.get(u, ())) for u in order]
    rel = [labels[u] for u in order]
    return {
        "ndcg@10": np.array([ndcg_at_k(r, t, 10) for r, t in zip(ranked, rel)]),
        "recall@10": np.array([recall_at_k(r, t, 10) for r, t in zip(ranked, rel)]),
        "hr@10": np.array([hit_rate_at_k(r, t, 10) for r, t in zip(ranked, rel)]),
        "mrr": np.array([mrr(r, t) for r, t in zip(ranked, rel)]),
    }


def metric_intervals(per_user: Mapping[str, np.ndarray], n_resamples: int = N_RESAMPLES,
                     seed: int = 0) -> dict[str, list[float]]:
    """``{"<metric>_ci95": [low, high]}`` for each metric of one model (the same resamples for all)."""
    names = list(per_user)
    values = np.column_stack([per_user[m] for m in names])
    means = _resampled_means(values, n_resamples, seed)
    return {f"{m}_ci95": _interval(float(values[:, j].mean()), means[:, j], values.shape[0], CONFIDENCE).as_list()
            for j, m in enumerate(names)}


def _resampled_ratios(num: np.ndarray, den: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """sum(num) / sum(den) over ``n_resamples`` user resamples (a rate per exposure, users as units)."""
    n = num.size
    out = np.empty(n_resamples)
    for a in range(0, n_resamples, CHUNK):
        b = min(n_resamples, a + CHUNK)
        idx = rng.integers(0, n, size=(b - a, n))
        d = den[idx].sum(axis=1)
        out[a:b] = np.divide(num[idx].sum(axis=1), d, out=np.zeros(b - a), where=d > 0)
    return out


def rate_difference_ci(num_b: np.ndarray, den_b: np.ndarray, num_a: np.ndarray, den_a: np.ndarray,
                       n_resamples: int = N_RESAMPLES, seed: int = 0,
                       confidence: float = CONFIDENCE) -> tuple[Interval, Interval]:
    """Two arms of an A/B test with users as the randomization unit: per user, outcomes ``num``
    (e.g. clicks) over exposures ``den``. Returns (difference of rates b - a, relative lift
    b / a - 1), each with its interval; the arms are independent samples, resampled separately."""
    arrays = [np.asarray(x, dtype=np.float64) for x in (num_b, den_b, num_a, den_a)]
    if arrays[0].size == 0 or arrays[2].size == 0:
        raise ValueError("rate_difference_ci: an arm without users")
    rng = np.random.default_rng(seed)
    rb = _resampled_ratios(arrays[0], arrays[1], n_resamples, rng)
    ra = _resampled_ratios(arrays[2], arrays[3], n_resamples, rng)

    def rate(num: np.ndarray, den: np.ndarray) -> float:
        return float(num.sum() / den.sum()) if den.sum() > 0 else 0.0

    point_b, point_a = rate(arrays[0], arrays[1]), rate(arrays[2], arrays[3])
    n = arrays[0].size + arrays[2].size
    diff = _interval(point_b - point_a, rb - ra, n, confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        lifts = np.where(ra > 0, rb / ra - 1.0, np.nan)
    lifts = lifts[np.isfinite(lifts)]
    point_lift = point_b / point_a - 1.0 if point_a > 0 else float("nan")
    lift = _interval(point_lift, lifts, n, confidence) if lifts.size else Interval(point_lift, float("nan"),
                                                                                     float("nan"), n)
    return diff, lift
