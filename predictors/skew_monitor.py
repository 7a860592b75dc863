"""Serving-side feature skew: the user rows the transformer serves, against the model version's
training histograms, exported as ``recommender_feature_skew_kl{feature}``."""

from __future__ import annotations

import collections
from typing import Any

from predictors import server_metrics as m
from recsys.features.distribution import kl_divergence, skew_values

SKEW_WINDOW = 2000  # rows compared: the most recent served users
SKEW_EVERY = 500  # served users between two refreshes of the gauges


class SkewMonitor:
    """Keeps the last :data:`SKEW_WINDOW` served rows and refreshes the KL gauges every
    :data:`SKEW_EVERY` rows."""

    def __init__(self, histograms: dict[str, Any]):
        self.histograms = histograms
        self.sample: collections.deque = collections.deque(maxlen=SKEW_WINDOW)
        self.seen = 0

    def observe(self, row: dict[str, Any]) -> None:
        self.sample.append(skew_values(row))
        self.seen += 1
        if self.seen % SKEW_EVERY == 0 and self.histograms:
            sample = list(self.sample)
            for name, hist in self.histograms.items():
                m.FEATURE_SKEW_KL.labels(name).set(kl_divergence(hist, [s[name] for s in sample if name in s]))
