"""How much an interaction counts in training, by its event type and the rank it was shown at.

* :func:`sample_weights`: the two-tower's per-example weights: the type's weight (a rating or a
  purchase 1, a view 0.25, a watch by how much was watched ...) times an inverse-propensity
  weight for the rank the item was shown at (items shown lower were less likely to be seen,
  so an interaction there says more). None when every weight is 1 (GroupLens ratings): the
  unweighted loss, exactly as before.
* :func:`relevance_grades`: the ranker's graded labels (0 = not relevant): a rating 1 whatever
  its value, as GroupLens ratings always were; an add-to-list, a purchase, a watch to the end 2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EVENT_WEIGHTS: dict[str, float] = {"view": 0.25, "click": 0.5, "add_to_list": 0.75, "rating": 1.0, "watch": 0.5,
                                   "purchase": 1.0, "skip": 0.0, "impression": 0.0}
POSITION_BIAS_EXPONENT = 0.5  # inverse-propensity weight of an interaction at rank p: (1 + p) ** exponent
POSITION_WEIGHT_CAP = 5.0
STRONG = ("purchase", "add_to_list")


def sample_weights(interactions: pd.DataFrame) -> np.ndarray | None:
    """Per-row weights of canonically ordered interactions (None: all 1)."""
    if "event_type" not in interactions:
        return None
    kind = interactions["event_type"].astype(str)
    w = kind.map(EVENT_WEIGHTS).fillna(0.0).to_numpy(np.float64)
    if "progress" in interactions:
        progress = pd.to_numeric(interactions["progress"], errors="coerce").to_numpy(np.float64)
        watch = (kind == "watch").to_numpy() & np.isfinite(progress)
        w[watch] = 0.25 + 0.75 * progress[watch]
    if "position" in interactions:
        pos = pd.to_numeric(interactions["position"], errors="coerce").to_numpy(np.float64)
        shown = np.isfinite(pos) & (pos >= 0)
        w[shown] *= np.minimum(POSITION_WEIGHT_CAP, (1.0 + pos[shown]) ** POSITION_BIAS_EXPONENT)
    return None if np.all(w == 1.0) else w


def relevance_grades(held: pd.DataFrame) -> pd.Series:
    """The graded label of each held-out interaction (same index)."""
    if "event_type" not in held:
        return pd.Series(1, index=held.index, dtype=np.int64)
    kind = held["event_type"].astype(str)
    progress = pd.to_numeric(held.get("progress", pd.Series(np.nan, index=held.index)), errors="coerce")
    strong = kind.isin(STRONG) | ((kind == "watch") & (progress >= 0.8))
    none = kind.isin(("skip", "impression"))
    return pd.Series(np.where(none, 0, np.where(strong, 2, 1)), index=held.index, dtype=np.int64)
