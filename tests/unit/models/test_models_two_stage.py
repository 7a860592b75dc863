"""The two-stage model's parts: MMR, the FAISS index, the ranker's saved importances, the towers'
caches after training."""

import json

import numpy as np
import pytest

from testkit import fast_settings


@pytest.fixture(scope="module")
def models(trained_models):
    return trained_models


def test_mmr_changes_order_but_not_membership_rules(models):
    rec = models.recommender
    state = models.level0.label_states()[0]
    plain = rec.recommend([state], k=10)[0]
    diverse = rec.recommend([state], k=10, mmr_lambda=0.3)[0]
    assert len(diverse.item_ids) == 10 and len(set(diverse.item_ids.tolist())) == 10
    assert diverse.item_ids[0] == plain.item_ids[0]  # the best item always goes first
    assert not set(diverse.item_ids.tolist()) & set(state.seen_items)
    assert diverse.item_ids.tolist() != plain.item_ids.tolist()


def test_index_reaches_recall_target_against_exact(models):
    stats = models.index_stats
    assert stats.recall_at_k_vs_exact >= 0.95 or stats.nprobe == stats.nlist
    assert stats.tuning[0]["nprobe"] == stats.nprobe_start


def test_ranker_saves_importances(bundle_dir):
    info = json.loads((bundle_dir / "ranker.json").read_text())
    assert set(info["importance_gain"]) >= {"tt_score", "cooc_score", "item_log_pop"}
    assert (bundle_dir / "ranker.txt").read_text().startswith("tree")


def test_trained_towers_embed_with_their_final_weights(models):
    """Caches derived from the weights (item input table, item embeddings) are rebuilt after
    training, also when validation embedded users between epochs: embedding users through the
    trained TwoTower equals running the module afresh."""
    import torch

    from recsys.models.two_tower import train_two_tower

    lv = models.level0
    states = lv.label_states()
    tt, history = train_two_tower(lv.train, lv.catalog, lv.user_table, fast_settings(tt_patience=5),
                                  validation=(states, lv.labels), epochs=3, progress=False)
    assert len(history["val_recall@100"]) == 3  # validation embedded users after every epoch
    with torch.inference_mode():
        want = tt.model.user_tower(*tt.encode_states(states[:40]), tt.model.item_inputs()).numpy()
        want_items = tt.model.item_tower(torch.arange(1, len(tt.catalog) + 1)).numpy()
    np.testing.assert_allclose(tt.embed_users(states[:40]), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tt.item_embeddings(), want_items, rtol=1e-5, atol=1e-6)


def test_two_tower_training_is_deterministic(models):
    from recsys.models.two_tower import train_two_tower

    lv = models.level0
    runs = [train_two_tower(lv.train, lv.catalog, lv.user_table, fast_settings(), epochs=1, progress=False)[0]
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].item_embeddings(), runs[1].item_embeddings())
