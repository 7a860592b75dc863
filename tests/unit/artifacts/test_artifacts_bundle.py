"""The model bundle: a save/load round trip answers identically; every problem is named."""

import json
import shutil

import numpy as np
import pytest

from recsys.artifacts.bundle import BundleError, load_bundle, save_bundle


@pytest.fixture(scope="module")
def models(trained_models):
    return trained_models


def test_save_load_round_trip_gives_identical_scores(models, tmp_path):
    path = save_bundle(tmp_path / "b", models.recommender, models.level0.user_table, models.index_stats,
                       protocol="user-temporal", settings={}, ranker_features=models.ranker_sample)
    loaded = load_bundle(path)
    states = models.level0.label_states()[:50]
    before = models.recommender.recommend(states, k=30)
    after = loaded.recommender.recommend(states, k=30)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a.item_ids, b.item_ids)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
        np.testing.assert_allclose(a.retrieval_scores, b.retrieval_scores, rtol=1e-6)
    np.testing.assert_array_equal(loaded.recommender.item_emb, models.recommender.item_emb)
    assert loaded.recommender.config == models.recommender.config
    assert loaded.user_states()[states[0].user_id] == states[0]
    with pytest.raises(BundleError, match="already holds a bundle"):
        save_bundle(path, models.recommender, models.level0.user_table, models.index_stats, protocol="x", settings={})


def test_bundle_problems_are_named(bundle_dir, tmp_path):
    with pytest.raises(BundleError, match="no manifest.json"):
        load_bundle(tmp_path)
    broken = shutil.copytree(bundle_dir, tmp_path / "missing")
    (broken / "index.faiss").unlink()
    with pytest.raises(BundleError, match="missing index.faiss"):
        load_bundle(broken)
    corrupt = shutil.copytree(bundle_dir, tmp_path / "corrupt")
    with (corrupt / "ranker.txt").open("a") as fh:
        fh.write("\n")
    with pytest.raises(BundleError, match="ranker.txt does not match its sha256"):
        load_bundle(corrupt)
    other = shutil.copytree(bundle_dir, tmp_path / "other")
    m = json.loads((other / "manifest.json").read_text())
    m["format_version"] = 99
    (other / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="bundle format 99"):
        load_bundle(other)
