"""Expected start-up failures of the servers end in one line and exit 2 (no traceback): no model
behind the alias, a bundle that fails its checksum, a bad setting."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from servingkit import REPO, free_port

pytestmark = pytest.mark.integration


def start(args, tmp_path, **env):
    full = {**os.environ, "RUNS_DIR": str(tmp_path / "runs"), "PYTHONUNBUFFERED": "1", **env}
    full.pop("REDIS_URL", None)
    full.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", *args, "--model_name", "recommender", "--http_port", str(free_port()),
                           "--grpc_port", str(free_port())], cwd=REPO, env=full, capture_output=True, text=True,
                          timeout=300)


def one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize("server", [["predictors.predictor"], ["predictors.transformer", "--collocated"]])
def test_no_champion_in_the_registry(server, tmp_path):
    line = one_error_line(start([*server, "--model_uri", "models:/recommender@champion"], tmp_path))
    assert "models:/recommender@champion" in line and "make train" in line


def test_a_corrupt_bundle(bundle_dir, tmp_path):
    corrupt = shutil.copytree(bundle_dir, tmp_path / "corrupt")
    with (corrupt / "ranker.txt").open("a") as fh:
        fh.write("\n")
    line = one_error_line(start(["predictors.predictor", "--model_dir", str(corrupt)], tmp_path))
    assert "ranker.txt does not match its sha256" in line


def test_a_bad_setting(bundle_dir, tmp_path):
    line = one_error_line(start(["predictors.predictor", "--model_dir", str(bundle_dir)], tmp_path,
                                PREDICTOR_TIMEOUT_SECONDS="soon"))
    assert "environment variable PREDICTOR_TIMEOUT_SECONDS" in line
