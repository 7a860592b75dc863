"""The whole pipeline through kfp.local (subprocesses of this interpreter) on a tiny synthetic dataset."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipetest import TINY_ENV, new_project

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.integration
def test_make_train_path_runs_every_step_and_registers_a_champion(tmp_path):
    from recsys.data.synthetic import write_synthetic

    data = write_synthetic(tmp_path / "data", n_users=150, n_items=200, seed=2)
    runs = tmp_path / "runs"
    env = {**os.environ, **TINY_ENV, "RUNS_DIR": str(runs), "FEAST_PROJECT": new_project(), "REDIS_URL": "",
           "PYTHONPATH": str(ROOT)}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACT_ROOT", "GATE_MARGIN"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines", "train", "--data-dir", str(data), "--no-baselines",
         "--embedding-dim", "32", "--top-k-candidates", "100", "--ranker-rounds", "40", "--skew-sample-size", "100"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-4000:]
    from pipelines.training_pipeline import STEPS

    for step in STEPS:
        assert re.search(rf"^\s+{step}\s+\d+\.\d\s+\d+\.\d$", out, re.M), f"no timing row for {step}"
    assert "-> @champion" in out and "no current champion" in out
    assert "online store sqlite" in out
    assert (runs / "mlflow.db").is_file() and any((runs / "mlartifacts").iterdir())
    # The registered version's source (KServe's storageUri) is under the store's mlartifacts/.
    storage_uri = re.search(r"storageUri (\S+)", out)
    assert storage_uri and storage_uri[1].startswith((runs / "mlartifacts").resolve().as_uri() + "/"), out[-2000:]
    assert storage_uri[1].endswith("/artifacts/bundle")

    # The champion resolves by alias to a loadable bundle.
    # os._exit: with one-thread torch/LightGBM settings a native thread pool sometimes aborts at
    # interpreter shutdown ("terminate called without an active exception") after the work is done.
    code = ("import os, sys; from recsys.artifacts.registry import resolve_bundle; "
            "from recsys.artifacts.bundle import load_bundle; "
            "print(load_bundle(resolve_bundle('champion')).version); sys.stdout.flush(); os._exit(0)")
    check = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr[-3000:]
    assert re.search(r"\d{8}T\d{6}Z-", check.stdout)
