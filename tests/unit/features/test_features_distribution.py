"""Training histograms and KL divergence against serving samples."""

import numpy as np

from recsys.features.distribution import detect_skew, feature_histograms, kl_divergence


def test_kl_flags_a_shifted_feature_and_passes_an_unshifted_one():
    rng = np.random.default_rng(0)
    train = {"a": rng.normal(0, 1, 20_000), "b": rng.exponential(2.0, 20_000)}
    hist = feature_histograms(train)
    same = {"a": rng.normal(0, 1, 2_000), "b": rng.exponential(2.0, 2_000)}
    shifted = {"a": rng.normal(1.5, 1, 2_000), "b": rng.exponential(2.0, 2_000)}
    kl, flagged, any_ = detect_skew(hist, same, threshold=0.1)
    assert not any_ and flagged == [] and max(kl.values()) < 0.05
    kl, flagged, any_ = detect_skew(hist, shifted, threshold=0.1)
    assert any_ and flagged == ["a"] and kl["a"] > 0.5


def test_kl_is_finite_for_values_outside_training_range():
    hist = feature_histograms({"x": np.arange(100.0)})
    assert np.isfinite(kl_divergence(hist["x"], [1e9, -1e9]))


def test_skew_values_of_a_row_match_the_table_columns():
    import pandas as pd

    from recsys.features.distribution import SKEW_FEATURES, skew_values, user_feature_values

    rows = [{"n_ratings": 3, "mean_rating": 4.5, "age": 25, "occupation": 7, "recent_items": [1, 2]},
            {"n_ratings": 1, "mean_rating": 2.0, "age": 1, "occupation": 0, "recent_items": []}]
    table = user_feature_values(pd.DataFrame(rows))
    assert tuple(table) == SKEW_FEATURES
    for i, row in enumerate(rows):
        assert skew_values(row) == {name: float(table[name][i]) for name in SKEW_FEATURES}
