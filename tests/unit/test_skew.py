import numpy as np

from recsys.skew import detect_skew, feature_histograms, kl_divergence


def test_kl_flags_a_shifted_feature_and_passes_an_unshifted_one():
    rng = np.random.default_rng(0)
    train = {"a": rng.normal(0, 1, 20_000), "b": rng.exponential(2.0, 20_000)}
    hist = feature_histograms(train)
    same = {"a": rng.normal(0, 1, 2_000), "b": rng.exponential(2.0, 2_000)}
    shifted = {"a": rng.normal(1.5, 1, 2_000), "b": rng.exponential(2.0, 2_000)}
    kl, flagged, any_ = detect_skew(hist, same)
    assert not any_ and flagged == [] and max(kl.values()) < 0.05
    kl, flagged, any_ = detect_skew(hist, shifted)
    assert any_ and flagged == ["a"] and kl["a"] > 0.5


def test_kl_is_finite_for_values_outside_training_range():
    hist = feature_histograms({"x": np.arange(100.0)})
    assert np.isfinite(kl_divergence(hist["x"], [1e9, -1e9]))
