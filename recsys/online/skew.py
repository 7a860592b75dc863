"""Training-serving skew of a deployed model version: the bundle's training histograms against
user rows read back from the online store (the pipeline's ``skew`` step)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from recsys.features.distribution import detect_skew, user_feature_values

if TYPE_CHECKING:
    from feast import FeatureStore


def skew_check(bundle_dir: str | Path, serving: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """KL per user feature between the bundle's training histograms and a serving-time sample.

    ``serving`` is a user table (e.g. rows read from the online store). Returns
    ``{"kl": {...}, "flagged": [...], "skewed": bool, "threshold": t, "n": rows}``.
    """
    stats = json.loads((Path(bundle_dir) / "feature_stats.json").read_text())
    kl, flagged, any_ = detect_skew(stats["user"], user_feature_values(serving), threshold)
    return {"kl": kl, "flagged": flagged, "skewed": any_, "threshold": threshold, "n": int(len(serving))}


def online_skew(bundle_dir: str | Path, store: FeatureStore, threshold: float, sample_size: int = 500,
                seed: int = 0) -> dict[str, Any]:
    """:func:`skew_check` on ``sample_size`` of the bundle's users read back from the online store
    (``missing``: sampled users the store has no row for; none found counts as skewed)."""
    from recsys.online.user_rows import get_user_features

    users = pd.read_parquet(Path(bundle_dir) / "users.parquet", columns=["user_id"])["user_id"]
    ids = users.sample(min(sample_size, len(users)), random_state=seed).astype(int).tolist()
    rows = [r for r in get_user_features(store, ids).values() if r is not None]
    if rows:
        out = skew_check(bundle_dir, pd.DataFrame(rows), threshold)
    else:
        out = {"kl": {}, "flagged": [], "skewed": True, "threshold": threshold, "n": 0}
    out["missing"] = len(ids) - len(rows)
    return out
