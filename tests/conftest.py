"""Shared fixtures: a small synthetic GroupLens dataset and a bundle trained on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")


def fast_settings(**overrides):
    """Settings small enough for a test to train every model in seconds."""
    from recsys.config import Settings

    base = dict(
        embedding_dim=32, history_len=20, tt_epochs=4, tt_patience=2, tt_batch_size=256,
        top_k_candidates=100, faiss_n_lists=8, faiss_n_probe=2, cooc_candidates=50, rank_candidates=120,
        lgbm_n_estimators=60, lgbm_min_data_in_leaf=20, lgbm_early_stopping_rounds=15, torch_threads=2,
        ials_factors=16, ials_iterations=10,  # 300 users: 64 factors overfit
    )
    base.update(overrides)
    return Settings(**base)


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
