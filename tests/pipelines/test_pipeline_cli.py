"""Expected failures of `make train` (python -m pipelines train) end in one line and exit 2,
before any step runs: no data (an unreachable download), an unreachable REDIS_URL, a bad setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import FAST_ENV

ROOT = Path(__file__).resolve().parents[2]


def train(tmp_path, *args, **env):
    full = {**os.environ, **FAST_ENV, "RUNS_DIR": str(tmp_path / "runs"), "CACHE_DIR": str(tmp_path / "cache"),
            "PYTHONPATH": str(ROOT), **env}
    for name in ("DATA_DIR", "REDIS_URL"):
        if name not in env:
            full.pop(name, None)
    return subprocess.run([sys.executable, "-m", "pipelines", "train", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=300)


def one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


@pytest.mark.integration
def test_no_reachable_download_names_what_to_set(tmp_path):
    line = one_error_line(train(tmp_path, DATA_URL="http://127.0.0.1:9/ml-1m.zip"))
    assert "could not download http://127.0.0.1:9/ml-1m.zip" in line
    assert "DATA_DIR=" in line and "DATA_URL=file://" in line


@pytest.mark.integration
def test_a_missing_data_directory_and_an_unreachable_redis_are_named(tmp_path, synthetic_dir):
    line = one_error_line(train(tmp_path, "--data-dir", str(tmp_path / "nope")))
    assert "nope" in line and "ratings.dat" in line
    line = one_error_line(train(tmp_path, "--data-dir", str(synthetic_dir), REDIS_URL="redis://127.0.0.1:9/0"))
    assert "REDIS_URL redis://127.0.0.1:9/0: unreachable" in line and "unset REDIS_URL" in line


@pytest.mark.integration
def test_a_bad_setting_is_named(tmp_path, synthetic_dir):
    line = one_error_line(train(tmp_path, "--data-dir", str(synthetic_dir), EMBEDDING_DIM="abc"))
    assert "environment variable EMBEDDING_DIM" in line and "'abc'" in line
