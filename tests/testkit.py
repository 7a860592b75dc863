"""Helpers shared by test modules (a unique module name: `conftest` is ambiguous across
test directories)."""

from __future__ import annotations

import uuid

import pytest

# Settings small enough for a test to train every model in seconds (one definition: the
# in-process tests read them as Settings, the pipeline tests as environment variables).
FAST = dict(
    embedding_dim=32, history_len=20, tt_epochs=4, tt_patience=2, tt_batch_size=256,
    top_k_candidates=100, faiss_n_lists=8, faiss_n_probe=2, cooc_candidates=50, rank_candidates=120,
    lgbm_n_estimators=60, lgbm_min_data_in_leaf=20, lgbm_early_stopping_rounds=15, torch_threads=2,
    ials_factors=16, ials_iterations=10,  # 300 users: 64 factors overfit
    # 300 users = 19 batches of 16 per epoch: a high rate learns the synthetic walks in ~15 epochs
    sasrec_dim=32, sasrec_max_len=50, sasrec_dropout=0.1, sasrec_learning_rate=1e-2, sasrec_batch_size=16,
    sasrec_max_epochs=15, sasrec_patience=3,
)
FAST_ENV = {k.upper(): str(v) for k, v in FAST.items()}


def fast_settings(**overrides):
    """:data:`FAST` as Settings, with ``overrides``."""
    from recsys.config import Settings

    return Settings(**{**FAST, **overrides})


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


def new_project() -> str:
    """A Feast project name of its own (letters, digits, underscores)."""
    return f"test_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def project() -> str:
    return new_project()
