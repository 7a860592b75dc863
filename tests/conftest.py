"""Shared fixtures: a small synthetic GroupLens dataset and a bundle trained on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testkit import fast_settings

os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    from recsys.data.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("ml-synthetic"), n_users=300, n_items=400, seed=0)


@pytest.fixture(scope="session")
def movielens(synthetic_dir):
    from recsys.data.movielens import load_movielens

    return load_movielens(synthetic_dir)


@pytest.fixture(scope="session")
def trained(movielens, tmp_path_factory):
    """(bundle path, evaluation report) for the synthetic data, trained once per session."""
    from recsys.training.run import train_bundle

    out = tmp_path_factory.mktemp("bundle") / "bundle"
    return train_bundle(movielens, out, fast_settings(), progress=False)


@pytest.fixture(scope="session")
def bundle_dir(trained) -> Path:
    return trained[0]


@pytest.fixture(scope="session")
def trained_models(movielens):
    """The in-memory training run (recsys.training.run.TrainedModels) on the synthetic data."""
    from recsys.training.run import train_models

    return train_models(movielens, "user-temporal", fast_settings(), progress=False)


@pytest.fixture
def local_state(tmp_path, monkeypatch):
    """A private RUNS_DIR (MLflow store, Feast registry and SQLite store) and Feast project in the
    environment, no REDIS_URL; the settings cache is cleared before and after."""
    import uuid

    from recsys.config import get_settings

    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FEAST_PROJECT", f"test_{uuid.uuid4().hex[:10]}")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "runs"
    get_settings.cache_clear()
