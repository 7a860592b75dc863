"""The registry gate: challenger vs champion on the same test users, with a paired bootstrap interval.

A bundle carries its evaluation set (``gate_set.parquet``: the level-0 user rows of the test
users and their held-out items; outside the manifest's file list, like ``report.json``). At
registration both the new bundle (the challenger) and the current champion rank those users
from the same rows, so the per-user NDCG@10 differences are paired; users are resampled
(:func:`recsys.evaluation.bootstrap.paired_difference_ci`) and the challenger is promoted only
when the *lower* bound of the 95% interval of ``challenger - champion`` is above the margin
(default -0.002: no worse than that, with 95% confidence). The decision names the bound that
decided it: the lower bound above the margin (promote), the upper bound below it (the
challenger is worse), or the margin inside the interval (no evidence: the champion stays).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recsys.evaluation.bootstrap import CONFIDENCE, Interval, paired_difference_ci
from recsys.evaluation.metrics import ndcg_at_k

if TYPE_CHECKING:
    from recsys.features.users import UserState
    from recsys.models.recommender import TwoStageRecommender
    from recsys.training.levels import Level

GATE_SET = "gate_set.parquet"
BATCH = 512


@dataclass(frozen=True)
class GateDecision:
    """Promote or not, why, and the interval behind it."""

    promoted: bool
    reason: str
    decided_by: str  # "lower_bound" | "upper_bound" | "interval_contains_margin" | "no_champion" | ...
    diff: Interval | None = None
    margin: float = 0.0

    def tags(self) -> dict[str, str]:
        out = {"gate_decided_by": self.decided_by, "gate_margin": str(self.margin)}
        if self.diff is not None:
            out.update(gate_diff=f"{self.diff.mean:.6f}", gate_ci_low=f"{self.diff.low:.6f}",
                       gate_ci_high=f"{self.diff.high:.6f}", gate_users=str(self.diff.n))
        return out


def write_gate_set(level: Level, bundle_dir: str | Path) -> Path:
    """The level's labelled users (their rows and held-out items) into the bundle."""
    users = sorted(level.labels)
    rows = level.user_table[level.user_table["user_id"].isin(users)].sort_values("user_id").reset_index(drop=True)
    rows["labels"] = [sorted(level.labels[int(u)]) for u in rows["user_id"]]
    path = Path(bundle_dir) / GATE_SET
    rows.to_parquet(path, index=False)
    return path


def read_gate_set(bundle_dir: str | Path) -> tuple[list[UserState], dict[int, set[int]]]:
    """(user states, held-out items) of a bundle's evaluation set."""
    from recsys.features.users import UserState

    path = Path(bundle_dir) / GATE_SET
    if not path.is_file():
        raise FileNotFoundError(f"{bundle_dir}: no {GATE_SET} (bundles written before the paired gate lack it)")
    df = pd.read_parquet(path)
    labels = {int(u): {int(i) for i in items} for u, items in zip(df["user_id"], df["labels"])}
    states = [UserState.from_row(r) for r in df.drop(columns=["labels"]).to_dict("records")]
    return states, labels


def per_user_ndcg(rec: TwoStageRecommender, states: list[UserState], labels: dict[int, set[int]],
                  k: int = 10) -> np.ndarray:
    """NDCG@k of each user in ``states`` (in that order) for the two-stage recommender."""
    out = np.empty(len(states))
    for a in range(0, len(states), BATCH):
        chunk = states[a:a + BATCH]
        for j, (s, r) in enumerate(zip(chunk, rec.recommend(chunk, k=k))):
            out[a + j] = ndcg_at_k(r.item_ids.tolist(), labels[s.user_id], k)
    return out


def decide(challenger: np.ndarray, champion: np.ndarray, margin: float, champion_label: str,
           n_resamples: int = 1000, seed: int = 0) -> GateDecision:
    """Promote iff the lower bound of the 95% interval of mean(challenger - champion) > ``margin``."""
    diff = paired_difference_ci(challenger, champion, n_resamples=n_resamples, seed=seed)
    what = (f"ndcg@10 challenger - {champion_label} = {diff.mean:+.5f}, {CONFIDENCE:.0%} CI "
            f"[{diff.low:+.5f}, {diff.high:+.5f}] over {diff.n} paired users ({n_resamples} resamples)")
    if diff.low > margin:
        return GateDecision(True, f"promoted: lower bound {diff.low:+.5f} > margin {margin:+.5f}; {what}",
                            "lower_bound", diff, margin)
    if diff.high < margin:
        return GateDecision(False, f"not promoted: upper bound {diff.high:+.5f} < margin {margin:+.5f} "
                            f"(worse); {what}", "upper_bound", diff, margin)
    return GateDecision(False, f"not promoted: lower bound {diff.low:+.5f} <= margin {margin:+.5f} "
                        f"(no evidence it is no worse); {what}", "interval_contains_margin", diff, margin)


def paired_gate(challenger_dir: str | Path, champion_dir: str | Path, margin: float, champion_label: str,
                n_resamples: int = 1000, seed: int = 0) -> GateDecision:
    """Both bundles on the challenger's evaluation set; :func:`decide`."""
    from recsys.artifacts.bundle import load_bundle

    states, labels = read_gate_set(challenger_dir)
    new = per_user_ndcg(load_bundle(challenger_dir).recommender, states, labels)
    old = per_user_ndcg(load_bundle(champion_dir).recommender, states, labels)
    return decide(new, old, margin, champion_label, n_resamples, seed)
