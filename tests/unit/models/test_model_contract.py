"""The model contract (recsys.models.base.Recommender), run over every recommender and baseline:
one answer per user in order, at most k distinct catalog items, none already seen, scores not
increasing, deterministic, unknown users and k beyond the catalog handled, and better than
random on the synthetic data's test labels."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.constants import PRIMARY_MODEL
from recsys.evaluation.harness import baseline_models, top_k_from_scores
from recsys.evaluation.metrics import evaluate_lists
from recsys.features.users import UserState
from recsys.models.sasrec import SASRec, SASRecConfig

from testkit import fast_settings

MODELS = ("popularity", "ease", "ials", "sasrec", PRIMARY_MODEL)


@pytest.fixture(scope="module")
def fitted(trained_models):
    lv = trained_models.level0
    out = {PRIMARY_MODEL: trained_models.recommender}
    for model in [*baseline_models(fast_settings()), SASRec(SASRecConfig.from_settings(fast_settings()))]:
        out[model.name] = model.fit(lv.train, lv.catalog, list(lv.states.values()))
    return out


@pytest.fixture(params=MODELS)
def model(request, fitted):
    return fitted[request.param]


def test_one_answer_per_user_with_distinct_unseen_catalog_items_best_first(model, trained_models):
    lv = trained_models.level0
    states = lv.label_states()[:40]
    recs = model.recommend(states, k=15)
    assert len(recs) == len(states)
    catalog = set(lv.catalog.item_ids.tolist())
    for state, r in zip(states, recs):
        ids = r.item_ids.tolist()
        assert 0 < len(ids) <= 15 and len(set(ids)) == len(ids)
        assert set(ids) <= catalog
        assert not set(ids) & set(state.seen_items)
        assert len(r.scores) == len(ids) and np.all(np.diff(np.asarray(r.scores, np.float64)) <= 1e-6)


def test_answers_are_deterministic(model, trained_models):
    states = trained_models.level0.label_states()[:20]
    a, b = model.recommend(states, k=10), model.recommend(states, k=10)
    for x, y in zip(a, b):
        assert x.item_ids.tolist() == y.item_ids.tolist()
        np.testing.assert_array_equal(x.scores, y.scores)


def test_unknown_user_and_k_beyond_the_catalog(model, trained_models):
    lv = trained_models.level0
    unknown = UserState(user_id=10**9)
    known = lv.label_states()[0]
    first, second = model.recommend([unknown, known], k=len(lv.catalog) + 50)
    assert 0 < len(first.item_ids) <= len(lv.catalog)
    assert not set(second.item_ids.tolist()) & set(known.seen_items)
    assert len(second.item_ids) <= len(lv.catalog) - len(set(known.seen_items))


def test_every_model_beats_random_by_a_clear_margin(model, trained_models):
    lv = trained_models.level0
    states = lv.label_states()
    rng = np.random.default_rng(123)
    random_lists = top_k_from_scores(rng.random((len(states), len(lv.catalog))), states, lv.catalog)
    random = evaluate_lists(random_lists, lv.labels, len(lv.catalog), lv.catalog.genre_sets)
    lists = {s.user_id: r.item_ids.tolist() for s, r in zip(states, model.recommend(states, k=100))}
    got = evaluate_lists(lists, lv.labels, len(lv.catalog), lv.catalog.genre_sets)
    assert got["ndcg@10"] >= 2.0 * random["ndcg@10"], (got["ndcg@10"], random["ndcg@10"])
    assert got["hr@10"] >= 1.5 * random["hr@10"], (got["hr@10"], random["hr@10"])


def test_the_report_scores_every_model_and_channel(trained):
    report = trained[1]
    assert set(report["models"]) == {"popularity", "ease", "ials", "cooc", "two_tower", PRIMARY_MODEL}
    assert report["models"][PRIMARY_MODEL]["ndcg@10"] >= report["models"]["popularity"]["ndcg@10"]
