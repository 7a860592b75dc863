"""Shared fixtures: a small synthetic GroupLens dataset and a bundle trained on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testkit import fast_settings

os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    from recsys.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("ml-synthetic"), n_users=300, n_items=400, seed=0)


@pytest.fixture(scope="session")
def movielens(synthetic_dir):
    from recsys.data import load_movielens

    return load_movielens(synthetic_dir)


@pytest.fixture(scope="session")
def trained(movielens, tmp_path_factory):
    """(bundle path, evaluation report) for the synthetic data, trained once per session."""
    from recsys.train import train_bundle

    out = tmp_path_factory.mktemp("bundle") / "bundle"
    return train_bundle(movielens, out, fast_settings(), progress=False)


@pytest.fixture(scope="session")
def bundle_dir(trained) -> Path:
    return trained[0]
