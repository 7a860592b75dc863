"""Feature distributions: histograms at training time, KL divergence against serving samples.

The histograms (``feature_stats.json`` in the model bundle) are fixed-bin counts over the
training distribution; :func:`kl_divergence` compares a sample of serving-time values with
them: KL(serving || training) with additive smoothing, so empty bins never give infinity.
:data:`SKEW_FEATURES` are the user features compared (training table vs online rows), read by
:func:`user_feature_values` (a table) and :func:`skew_values` (one row) alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

SKEW_FEATURES = ("n_ratings", "mean_rating", "age", "occupation", "n_recent")


def skew_values(row: Mapping[str, Any]) -> dict[str, float]:
    """The :data:`SKEW_FEATURES` of one user row (``n_recent`` = length of ``recent_items``)."""
    return {"n_ratings": float(row.get("n_ratings") or 0), "mean_rating": float(row.get("mean_rating") or 0.0),
            "age": float(row.get("age") or 0), "occupation": float(row.get("occupation") or 0),
            "n_recent": float(len(row.get("recent_items") or []))}


def user_feature_values(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """The :data:`SKEW_FEATURES` of a user table, as columns."""
    return {
        "n_ratings": table["n_ratings"].to_numpy(np.float64),
        "mean_rating": table["mean_rating"].to_numpy(np.float64),
        "age": table["age"].to_numpy(np.float64),
        "occupation": table["occupation"].to_numpy(np.float64),
        "n_recent": table["recent_items"].map(len).to_numpy(np.float64),
    }


def feature_histograms(values: Mapping[str, np.ndarray], bins: int = 20) -> dict[str, dict]:
    """``{feature: {"edges": [...], "counts": [...]}}`` with quantile-based bin edges."""
    out = {}
    for name, col in values.items():
        col = np.asarray(col, np.float64)
        col = col[np.isfinite(col)]
        if col.size == 0:
            continue
        edges = np.unique(np.quantile(col, np.linspace(0, 1, bins + 1)))
        if edges.size < 2:
            edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
        counts = _bin_counts(col, edges)
        out[name] = {"edges": edges.tolist(), "counts": counts.tolist()}
    return out


def _bin_counts(col: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # Values outside the training range fall into the first / last bin.
    pos = np.clip(np.searchsorted(edges, col, side="right") - 1, 0, len(edges) - 2)
    return np.bincount(pos, minlength=len(edges) - 1).astype(np.float64)


def kl_divergence(hist: Mapping, sample: Sequence[float] | np.ndarray, alpha: float = 0.5) -> float:
    """KL(P_serving || P_training) over the training bins, additive smoothing ``alpha``."""
    edges = np.asarray(hist["edges"], np.float64)
    q = np.asarray(hist["counts"], np.float64) + alpha
    col = np.asarray(sample, np.float64)
    col = col[np.isfinite(col)]
    p = _bin_counts(col, edges) + alpha
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def detect_skew(
    histograms: Mapping[str, Mapping], sample: Mapping[str, Sequence[float] | np.ndarray], threshold: float
) -> tuple[dict[str, float], list[str], bool]:
    """KL per feature present in both, the features over ``threshold``, and whether any is."""
    kl = {
        name: kl_divergence(histograms[name], values)
        for name, values in sample.items()
        if name in histograms and len(values)
    }
    flagged = sorted(name for name, v in kl.items() if v > threshold)
    return kl, flagged, bool(flagged)
