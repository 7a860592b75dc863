"""Bootstrap intervals: they cover the truth at about the stated rate, pairing narrows them,
the same seed gives the same interval, and the A/B rate difference behaves on known arms."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.evaluation.bootstrap import (
    bootstrap_ci,
    metric_intervals,
    paired_difference_ci,
    per_user_metrics,
    rate_difference_ci,
)


def test_a_95_interval_covers_the_true_mean_about_95_times_in_100():
    rng = np.random.default_rng(1)
    hits = 0
    for s in range(200):
        ci = bootstrap_ci(rng.exponential(1.0, 300), n_resamples=500, seed=s)
        hits += ci.low <= 1.0 <= ci.high
    assert 0.89 <= hits / 200 <= 0.99


def test_pairing_cancels_what_users_share():
    rng = np.random.default_rng(2)
    user_effect = rng.normal(0, 1, 2000)
    a = user_effect + rng.normal(0.05, 0.1, 2000)
    b = user_effect + rng.normal(0.0, 0.1, 2000)
    paired = paired_difference_ci(a, b, seed=3)
    apart = bootstrap_ci(a, seed=3).high - bootstrap_ci(a, seed=3).low
    assert paired.low > 0 and paired.excludes_zero()
    assert paired.high - paired.low < apart / 5
    assert paired == paired_difference_ci(a, b, seed=3)  # seeded: reproducible
    with pytest.raises(ValueError, match="different users"):
        paired_difference_ci(a, b[:-1])


def test_per_user_metrics_average_to_the_report_and_intervals_bracket_them():
    labels = {1: {10}, 2: {11, 12}, 3: {13}}
    lists = {1: [10, 5], 2: [5, 12], 3: [7, 8]}
    pu = per_user_metrics(lists, labels)
    assert pu["hr@10"].tolist() == [1.0, 1.0, 0.0]
    assert pu["ndcg@10"][0] == 1.0 and pu["mrr"][1] == 0.5
    cis = metric_intervals(pu, n_resamples=300, seed=0)
    assert set(cis) == {"ndcg@10_ci95", "recall@10_ci95", "hr@10_ci95", "mrr_ci95"}
    for m, (low, high) in ((k[: -len("_ci95")], v) for k, v in cis.items()):
        assert low <= pu[m].mean() <= high


def test_rate_difference_of_identical_arms_contains_zero_and_a_real_lift_does_not():
    rng = np.random.default_rng(4)
    exp_a, exp_b = rng.integers(5, 15, 3000), rng.integers(5, 15, 3000)
    same_a, same_b = rng.binomial(exp_a, 0.10), rng.binomial(exp_b, 0.10)
    diff, lift = rate_difference_ci(same_b, exp_b, same_a, exp_a, seed=0)
    assert diff.low < 0 < diff.high and lift.low < 0 < lift.high
    better_b = rng.binomial(exp_b, 0.12)
    diff, lift = rate_difference_ci(better_b, exp_b, same_a, exp_a, seed=0)
    assert diff.low > 0 and 0.1 < lift.mean < 0.3 and lift.low > 0
