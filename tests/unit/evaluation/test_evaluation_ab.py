"""A/B outcome analysis (recsys.evaluation.ab) and `make ab-report` (scripts/ab_report.py) on
logged events whose truth is known: the decision follows the arms' real click rates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recsys.evaluation.ab import analyze
from recsys.online.archive import events_frame, write_batch
from recsys.online.events import Event

REPO = Path(__file__).resolve().parents[3]


def logged(rates: dict[str, float], users: int = 150, shown: int = 8, seed: int = 0) -> list[Event]:
    """Per arm, ``users`` users with ``shown`` impressions each, each impression clicked with the arm's rate."""
    rng = np.random.default_rng(seed)
    out: list[Event] = []
    ts = 1_700_000_000
    for a, (arm, rate) in enumerate(rates.items()):
        for u in range(users):
            uid = a * 10_000 + u
            for k in range(shown):
                rid = f"r{uid}-{k}"
                out.append(Event(user_id=uid, item_id=k, event_type="impression", timestamp=ts, request_id=rid,
                                 variant=arm))
                if rng.random() < rate:
                    out.append(Event(user_id=uid, item_id=k, event_type="click", timestamp=ts + 1, request_id=rid,
                                     variant=arm, position=0))
    return out


@pytest.mark.parametrize("rates, decision", [
    ({"control": 0.10, "treatment": 0.25}, "ship"),
    ({"control": 0.25, "treatment": 0.10}, "keep"),
    ({"control": 0.15, "treatment": 0.15}, "no evidence yet"),
])
def test_the_decision_follows_the_arms_click_rates(rates, decision):
    rep = analyze(events_frame(logged(rates)), ["control", "treatment"], n_resamples=500)
    assert rep["control"] == "control"
    for arm, rate in rates.items():
        assert rep["arms"][arm]["users"] == 150 and rep["arms"][arm]["impressions"] == 1200
        assert abs(rep["arms"][arm]["ctr"] - rate) < 0.04
    cmp = rep["comparisons"]["treatment_vs_control"]
    assert cmp["decision"] == decision
    lo, hi = cmp["ctr"]["difference_ci95"]
    assert lo <= cmp["ctr"]["difference"] <= hi


def test_too_few_users_is_no_evidence_and_unknown_variants_are_refused():
    rep = analyze(events_frame(logged({"control": 0.05, "treatment": 0.5}, users=10)), n_resamples=200)
    assert rep["comparisons"]["treatment_vs_control"]["decision"] == "no evidence yet"  # 10 < MIN_USERS per arm
    with pytest.raises(ValueError, match="not arms of this experiment"):
        analyze(events_frame(logged({"control": 0.1, "other": 0.1})), ["control", "treatment"])


def test_ab_report_writes_json_markdown_and_plot_from_the_archive(tmp_path):
    write_batch(logged({"control": 0.10, "treatment": 0.25}, seed=3), tmp_path / "archive")
    exp = {"id": "exp1", "arms": [{"name": "control", "model": "champion", "predictor_host": "a:80", "share": 0.5},
                                  {"name": "treatment", "model": "challenger", "predictor_host": "b:80",
                                   "share": 0.5}]}
    proc = subprocess.run([sys.executable, "scripts/ab_report.py", "--archive", str(tmp_path / "archive"),
                           "--experiment", json.dumps(exp), "--out", str(tmp_path / "out"), "--resamples", "300"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads((tmp_path / "out" / "ab-report.json").read_text())
    assert list(rep["arms"]) == ["control", "treatment"]
    assert rep["comparisons"]["treatment_vs_control"]["decision"] == "ship"
    md = (tmp_path / "out" / "ab-report.md").read_text()
    assert "| treatment |" in md and "**ship**" in md
    assert (tmp_path / "out" / "ab-report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
