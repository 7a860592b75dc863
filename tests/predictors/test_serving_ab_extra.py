"""`make ab-simulate`'s contract without running it (the full run is the slow test in
test_serving_ab.py): at least 20 A/A runs, exit 1 after writing the report when the better arm
is not detected or the A/A false-positive rate is above 0.05, and the report says which data it
ran on (``--data-dir``, ``DATA_DIR``, else synthetic)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from servingkit import REPO


@pytest.fixture
def ab_simulate(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import ab_simulate

    return ab_simulate


def run(tmp_path, *args, **env):
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "scripts/ab_simulate.py", "--out", str(tmp_path / "out"), *args], cwd=REPO,
                          env=full, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("runs", ["1", "19"])
def test_fewer_than_20_aa_runs_are_refused(tmp_path, runs):
    proc = run(tmp_path, "--aa-runs", runs)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert f"--aa-runs {runs}: at least 20 A/A runs" in proc.stderr and "set --aa-runs 20" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_data_dir_that_does_not_exist_is_refused(tmp_path):
    proc = run(tmp_path, DATA_DIR=str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"DATA_DIR {tmp_path / 'nowhere'}: no such directory" in proc.stderr


def test_the_data_source_is_the_flag_then_data_dir_then_synthetic(ab_simulate, tmp_path):
    pick = ab_simulate.pick_data
    assert pick(None, False, {}) == {"source": "synthetic"}
    assert pick(None, False, {"DATA_DIR": ""}) == {"source": "synthetic"}  # make's empty DATA_DIR ?=
    assert pick(None, False, {"DATA_DIR": str(tmp_path)}) == {"source": "DATA_DIR", "path": str(tmp_path)}
    assert pick(str(tmp_path / "x"), False, {"DATA_DIR": "/else"}) == {"source": "--data-dir",
                                                                       "path": str(tmp_path / "x")}
    assert pick(None, True, {"DATA_DIR": str(tmp_path)}) == {"source": "synthetic"}


def report(ab_simulate, decision: str, aa_significant: int, aa_runs: int = 20) -> dict:
    ab = [{"run": 0, "decision": decision}]
    aa = [{"run": 1 + i, "decision": "ship" if i < aa_significant else "no evidence yet"} for i in range(aa_runs)]
    fp = aa_significant / aa_runs
    return {"ab_detected_better": decision == "ship", "power": float(decision == "ship"), "ab_runs": 1,
            "aa_runs": aa_runs, "aa_false_positive_rate": fp, "checks": ab_simulate.checks(decision == "ship", fp),
            "data": {"source": "synthetic", "path": "/d"}, "users_per_run": 80, "ab": ab, "aa": aa,
            "seconds": {"total": 1.0}, "command": "python scripts/ab_simulate.py"}


@pytest.mark.parametrize(("decision", "aa_significant", "code", "says"), [
    ("ship", 1, 0, None),  # 1/20 = 0.05: at the limit, passes
    ("no evidence yet", 0, 1, "better arm not detected"),
    ("ship", 2, 1, "A/A false-positive rate 0.100 > 0.05"),
])
def test_the_exit_code_follows_the_checks_after_the_report_is_written(ab_simulate, tmp_path, capsys, decision,
                                                                       aa_significant, code, says):
    rep = report(ab_simulate, decision, aa_significant)
    assert ab_simulate.finish(rep, tmp_path) == code
    written = json.loads((tmp_path / "ab-simulation.json").read_text())
    assert written["checks"]["passed"] is (code == 0) and written["data"]["source"] == "synthetic"
    assert "data: synthetic /d" in (tmp_path / "ab-simulation.md").read_text()
    err = capsys.readouterr().err
    assert (says in err) if says else err == ""
