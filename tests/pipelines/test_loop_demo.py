"""End to end: `make loop-demo` on a small synthetic dataset. Events replayed through the live
transformer reach the archive, change the replayed users' answers, and the model retrained on
the archive beats the one that never saw them on the next time slice."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from testkit import FAST_ENV

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_loop_demo_closes_the_loop(tmp_path):
    env = {**os.environ, **FAST_ENV, "TQDM_DISABLE": "1"}
    env.pop("REDIS_URL", None)
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "loop_demo.py"), "--synthetic", "--users",
                           "30", "--trending", "off", "--out", str(tmp_path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rep = json.loads((tmp_path / "loop.json").read_text())
    online = rep["online"]
    assert online["events_acknowledged"] > 0 and online["events_archived"] == online["events_acknowledged"]
    assert online["users_changed"] == "30/30"
    m = rep["models"]
    assert m["m1_retrained"]["ndcg@10"] > m["m0_static"]["ndcg@10"]
    assert rep["retrained_beats_static"] is (rep["versus_static"]["m1_retrained"]["ndcg@10_diff_ci95"][0] > 0)
    assert m["m1_retrained"]["ndcg@10_ci95"][0] <= m["m1_retrained"]["ndcg@10"] <= m["m1_retrained"]["ndcg@10_ci95"][1]
    assert m["m0_online_features"]["ndcg@10"] > m["m0_static"]["ndcg@10"]
    assert "| m1_retrained |" in (tmp_path / "loop.md").read_text()
