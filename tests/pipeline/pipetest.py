"""Helpers of the pipeline tests (a unique module name: tests/ has its own conftest)."""

from __future__ import annotations

import uuid

import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except Exception:
        return False


def delete_project_keys(project: str) -> int:
    """Feast's Redis keys end with the project name: delete every one of ``project``."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"*{project}".encode(), count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)


def fast_settings(**overrides):
    """Settings small enough to train every model in seconds (values of tests/conftest.py)."""
    from recsys.config import Settings

    base = dict(
        embedding_dim=32, history_len=20, tt_epochs=4, tt_patience=2, tt_batch_size=256,
        top_k_candidates=100, faiss_n_lists=8, faiss_n_probe=2, cooc_candidates=50, rank_candidates=120,
        lgbm_n_estimators=60, lgbm_min_data_in_leaf=20, lgbm_early_stopping_rounds=15, torch_threads=2,
        ials_iterations=5,
    )
    base.update(overrides)
    return Settings(**base)


FAST_ENV = {
    "EMBEDDING_DIM": "32", "HISTORY_LEN": "20", "TT_EPOCHS": "4", "TT_PATIENCE": "2", "TT_BATCH_SIZE": "256",
    "TOP_K_CANDIDATES": "100", "FAISS_N_LISTS": "8", "FAISS_N_PROBE": "2", "COOC_CANDIDATES": "50",
    "RANK_CANDIDATES": "120", "LGBM_N_ESTIMATORS": "60", "LGBM_MIN_DATA_IN_LEAF": "20",
    "LGBM_EARLY_STOPPING_ROUNDS": "15", "TORCH_THREADS": "2", "IALS_ITERATIONS": "5",
}


def new_project() -> str:
    """A Feast project name of its own (letters, digits, underscores)."""
    return f"test_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def project() -> str:
    return new_project()
