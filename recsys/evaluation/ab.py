"""Outcome analysis of a per-user A/B test from the logged events.

Exposure is what the client logged as shown: ``impression`` events (one per answered list,
with the answer's ``request_id`` and ``variant``). Outcomes are events that carry a variant:
``click``, and conversions (``purchase``, ``add_to_list``, a ``watch`` past 80%). Users are the
randomization unit, so per user: outcomes over impressions; the arms are compared by the
difference of their rates and the relative lift, each with a bootstrap interval over users
(:func:`recsys.evaluation.bootstrap.rate_difference_ci`).

Decision for a treatment against the control (the first arm): ``ship`` when the 95% interval of
the click-rate difference is above 0, ``keep`` (the control) when it is below 0, ``no evidence
yet`` otherwise (or with fewer than ``min_users`` users in an arm).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recsys.evaluation.bootstrap import bootstrap_ci, rate_difference_ci

CONVERSIONS = ("purchase", "add_to_list")
MIN_USERS = 30


def _conversion(events: pd.DataFrame) -> pd.Series:
    progress = pd.to_numeric(events.get("progress"), errors="coerce") if "progress" in events else np.nan
    return events["event_type"].isin(CONVERSIONS) | ((events["event_type"] == "watch") & (progress >= 0.8))


def per_user(events: pd.DataFrame) -> pd.DataFrame:
    """One row per (variant, user): impressions, clicks, conversions (events without a variant ignored)."""
    ev = events[events["variant"].notna() & (events["variant"] != "")]
    frame = pd.DataFrame({
        "variant": ev["variant"].astype(str), "user_id": ev["user_id"].astype(np.int64),
        "impressions": (ev["event_type"] == "impression").astype(int),
        "clicks": (ev["event_type"] == "click").astype(int),
        "conversions": _conversion(ev).astype(int),
    })
    return frame.groupby(["variant", "user_id"], sort=True).sum().reset_index()


def _arm_summary(rows: pd.DataFrame, seed: int) -> dict[str, Any]:
    exposed = rows[rows["impressions"] > 0]
    imp = int(exposed["impressions"].sum())
    out: dict[str, Any] = {"users": len(exposed), "impressions": imp, "clicks": int(exposed["clicks"].sum()),
                           "conversions": int(exposed["conversions"].sum())}
    out["ctr"] = out["clicks"] / imp if imp else 0.0
    out["conversion_rate"] = out["conversions"] / imp if imp else 0.0
    if len(exposed):
        per = exposed["clicks"].to_numpy(float) / exposed["impressions"].to_numpy(float)
        out["ctr_per_user_ci95"] = bootstrap_ci(per, seed=seed).as_list()
    return out


def decide(low: float, high: float, enough: bool) -> str:
    if not enough:
        return "no evidence yet"
    if low > 0:
        return "ship"
    if high < 0:
        return "keep"
    return "no evidence yet"


def analyze(events: pd.DataFrame, arms: list[str] | None = None, n_resamples: int = 1000, seed: int = 0,
            min_users: int = MIN_USERS) -> dict[str, Any]:
    """Per-arm exposure and rates, each treatment's lift over the control (the first arm) with
    95% intervals, and the decision. ``arms`` default: the variants seen, in order of first
    impression. A variant outside ``arms`` is an error (the report would silently drop it)."""
    rows = per_user(events)
    seen = list(dict.fromkeys(events.loc[events["event_type"] == "impression", "variant"].dropna().astype(str)))
    arms = arms or seen
    unknown = sorted(set(rows["variant"]) - set(arms))
    if unknown:
        raise ValueError(f"events carry variants {unknown} that are not arms of this experiment ({', '.join(arms)})")
    if len(arms) < 2:
        raise ValueError(f"need impressions of at least two arms, found {arms or 'none'}")
    report: dict[str, Any] = {"control": arms[0], "arms": {}, "comparisons": {}}
    by_arm = {a: rows[(rows["variant"] == a) & (rows["impressions"] > 0)] for a in arms}
    for a in arms:
        report["arms"][a] = _arm_summary(by_arm[a], seed)
    ctl = by_arm[arms[0]]
    for a in arms[1:]:
        tr = by_arm[a]
        enough = min(len(tr), len(ctl)) >= min_users
        cmp: dict[str, Any] = {}
        for metric, col in (("ctr", "clicks"), ("conversion_rate", "conversions")):
            if len(tr) == 0 or len(ctl) == 0:
                continue
            diff, lift = rate_difference_ci(tr[col].to_numpy(float), tr["impressions"].to_numpy(float),
                                            ctl[col].to_numpy(float), ctl["impressions"].to_numpy(float),
                                            n_resamples=n_resamples, seed=seed)
            cmp[metric] = {"difference": diff.mean, "difference_ci95": diff.as_list(), "lift": lift.mean,
                           "lift_ci95": lift.as_list()}
        ci = cmp.get("ctr", {}).get("difference_ci95", [float("nan")] * 2)
        cmp["decision"] = decide(ci[0], ci[1], enough and "ctr" in cmp)
        cmp["decided_on"] = "ctr difference 95% interval" if enough else f"fewer than {min_users} users in an arm"
        report["comparisons"][f"{a}_vs_{arms[0]}"] = cmp
    return report
