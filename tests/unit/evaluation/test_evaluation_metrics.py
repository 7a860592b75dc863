"""Metric functions against hand-computed cases."""

import math

import pytest

from recsys.evaluation.metrics import (
    catalog_coverage,
    evaluate_lists,
    hit_rate_at_k,
    intra_list_diversity,
    mrr,
    ndcg_at_k,
    recall_at_k,
)


def test_ndcg_binary_with_ideal_over_min_relevant_and_k():
    ranked = [5, 1, 7, 2]
    relevant = {1, 2}
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(ranked, relevant, 4) == pytest.approx(dcg / idcg)
    # K smaller than |relevant|: ideal DCG over K items only.
    assert ndcg_at_k([1, 2], {1, 2, 3}, 2) == pytest.approx(1.0)
    assert ndcg_at_k([9, 1], {1, 2, 3}, 1) == 0.0
    assert ndcg_at_k([1], set(), 10) == 0.0


def test_recall_hit_rate_and_mrr():
    ranked = [4, 3, 2, 1]
    assert recall_at_k(ranked, {1, 2, 8}, 3) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, {1, 2, 8}, 4) == pytest.approx(2 / 3)
    assert hit_rate_at_k(ranked, {1}, 3) == 0.0
    assert hit_rate_at_k(ranked, {1}, 4) == 1.0
    assert mrr(ranked, {2, 1}) == pytest.approx(1 / 3)
    assert mrr(list(range(200)), {150}) == 0.0  # beyond the top 100
    assert mrr(list(range(200)), {99}) == pytest.approx(1 / 100)


def test_coverage_and_diversity():
    assert catalog_coverage([[1, 2], [2, 3]], n_catalog=10, k=10) == pytest.approx(0.3)
    assert catalog_coverage([[1, 2, 3]], n_catalog=10, k=1) == pytest.approx(0.1)
    genres = {1: frozenset({"A"}), 2: frozenset({"A"}), 3: frozenset({"A", "B"})}
    # pairs: (1,2)=0, (1,3)=1-1/2, (2,3)=1-1/2 -> mean 1/3
    assert intra_list_diversity([1, 2, 3], genres) == pytest.approx(1 / 3)
    assert intra_list_diversity([1], genres) == 0.0


def test_evaluate_lists_averages_over_test_users():
    out = evaluate_lists({1: [10, 11], 2: [12]}, {1: {10}, 2: {99}, 3: {10}}, n_catalog=4, genres={}, ks=(1,))
    assert out["hr@1"] == pytest.approx(1 / 3)  # user 3 has no list: counts as a miss
    assert out["users"] == 3
