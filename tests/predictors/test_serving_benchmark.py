"""`make benchmark-serving`'s script runs end to end (real servers, tiny request count) and
writes a report that checks the numbers against the targets."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from servingkit import REPO, server_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_benchmark_script_writes_report_with_target_checks(bundle_dir, tmp_path):
    out = tmp_path / "reports"
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "benchmark_serving.py"),
        "--model-dir",
        str(bundle_dir),
        "--requests",
        "40",
        "--configs",
        "predictor,transformer_grpc",
        "--feature-source",
        "bundle",
        "--out",
        str(out),
    ]
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=server_env(RANKER_COMPILE_DIR=tmp_path / "compiled"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rep = json.loads((out / "serving.json").read_text())
    assert set(rep["results"]) == {"predictor", "transformer_grpc"}
    for r in rep["results"].values():
        assert r["c1"]["errors"] == r["c8"]["errors"] == 0 and r["c1"]["p50_ms"] > 0 and r["c8"]["rps"] > 0
    grpc = rep["targets"]["transformer_grpc"]
    assert grpc["checks"]["c1_p50_ms"][0] == rep["results"]["transformer_grpc"]["c1"]["p50_ms"]
    assert grpc["met"] == all(ok for _, ok in grpc["checks"].values())
    assert (
        rep["serving_setup"]["ranker_backend"] == "compiled"
        and rep["in_process_engine_no_memo_ms"]["total"]["p50_ms"] > 0
    )
    md = (out / "serving.md").read_text()
    assert "gRPC V2 hop" in md and "Targets" in md


def test_chaos_script_runs_every_phase_and_reports_the_targets(bundle_dir, tmp_path):
    """`make benchmark-chaos` on a short schedule: Redis killed, restarted empty, predictor
    killed; the report holds every phase and its checks (the targets themselves are measured
    by the full run, not asserted on a shared CI machine), and no answer is a 5xx."""
    out = tmp_path / "reports"
    cmd = [sys.executable, str(REPO / "scripts" / "benchmark_chaos.py"), "--model-dir", str(bundle_dir),
           "--seconds", "16", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=server_env(RANKER_COMPILE_DIR=tmp_path / "compiled"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    rep = json.loads((out / "chaos.json").read_text())
    assert list(rep["phases"]) == ["steady", "redis_down", "redis_back_empty", "predictor_down"]
    assert all(p["requests"] > 0 for p in rep["phases"].values())
    assert rep["checks"]["no_5xx"] == [0, True]
    assert rep["checks"]["predictor_down_flagged"][1] is True, rep["checks"]
    assert "redis_down" in rep["phases"]["redis_down"]["outcomes"] or "feature_store_down" in \
        rep["phases"]["redis_down"]["outcomes"]
    assert rep["met"] == all(ok for _, ok in rep["checks"].values()) and (proc.returncode == 0) == rep["met"]
    assert "| redis_down |" in (out / "chaos.md").read_text()
