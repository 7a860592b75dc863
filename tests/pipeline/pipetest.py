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


# One thread each: on 2 shared cores, torch/LightGBM default thread pools oversubscribe badly.
TINY_ENV = {**FAST_ENV, "TT_EPOCHS": "2", "IALS_ITERATIONS": "2", "TQDM_DISABLE": "1", "TORCH_THREADS": "1", "LGBM_NUM_THREADS": "1"}


class StepOutputs:
    """Directories and artifacts of one direct run of every component (see ``steps_run``)."""

    def __init__(self, root):
        self.root = root
        self.artifacts: dict = {}
        self.returns: dict = {}

    def __getitem__(self, name):
        return self.artifacts[name]


def artifact(kind, root, name):
    """A KFP artifact of class ``kind`` whose local path is ``root/name``."""
    return kind(name=name, uri=str(root / name))


@pytest.fixture(scope="module")
def pipeline_env(tmp_path_factory):
    """Tiny model settings and a private RUNS_DIR / Feast project in the environment (session)."""
    import os

    from recsys.config import get_settings

    runs = tmp_path_factory.mktemp("runs")
    env = {**TINY_ENV, "RUNS_DIR": str(runs), "FEAST_PROJECT": new_project(), "REDIS_URL": ""}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    yield env
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from recsys.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("ml-tiny"), n_users=200, n_items=300, seed=1)


@pytest.fixture(scope="module")
def steps_run(pipeline_env, tiny_data, tmp_path_factory) -> StepOutputs:
    """Every component's function called directly, in pipeline order, on the tiny dataset."""
    from kfp.dsl import Artifact, Dataset, Metrics, Model

    from components.build_index import build_index
    from components.evaluate import evaluate
    from components.features import features
    from components.ingest import ingest
    from components.materialize import materialize
    from components.register import register
    from components.skew import skew
    from components.train_ranker import train_ranker
    from components.train_two_tower import train_two_tower

    root = tmp_path_factory.mktemp("steps")
    out = StepOutputs(root)
    a = out.artifacts
    a["ingested"] = artifact(Dataset, root, "ingested")
    ingest.python_func(data_dir=str(tiny_data), protocol="user-temporal", ingested=a["ingested"])
    a["features"] = artifact(Dataset, root, "features")
    features.python_func(ingested=a["ingested"], history_len=20, features=a["features"])
    a["towers"] = artifact(Model, root, "towers")
    train_two_tower.python_func(ingested=a["ingested"], features=a["features"], embedding_dim=32, towers=a["towers"])
    a["index"] = artifact(Model, root, "index")
    build_index.python_func(ingested=a["ingested"], features=a["features"], towers=a["towers"], embedding_dim=32,
                            top_k_candidates=100, index=a["index"])
    a["ranker"] = artifact(Model, root, "ranker")
    train_ranker.python_func(ingested=a["ingested"], features=a["features"], towers=a["towers"], index=a["index"],
                             embedding_dim=32, top_k_candidates=100, ranker_rounds=60, ranker=a["ranker"])
    a["bundle"], a["metrics"] = artifact(Model, root, "bundle"), artifact(Metrics, root, "metrics")
    evaluate.python_func(ingested=a["ingested"], features=a["features"], towers=a["towers"], index=a["index"],
                         ranker=a["ranker"], embedding_dim=32, top_k_candidates=100, baselines=True,
                         bundle=a["bundle"], metrics=a["metrics"])
    a["registration"] = artifact(Artifact, root, "registration")
    register.python_func(bundle=a["bundle"], gate_min_delta=0.0, registration=a["registration"])
    a["online"] = artifact(Artifact, root, "online")
    materialize.python_func(bundle=a["bundle"], feast_project="", online=a["online"])
    a["kl"] = artifact(Metrics, root, "kl")
    out.returns["skew"] = skew.python_func(bundle=a["bundle"], online=a["online"], feast_project="", threshold=0.1,
                                           sample_size=100, kl=a["kl"])
    return out
