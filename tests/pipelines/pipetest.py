"""Helpers of the pipeline tests (a unique module name: tests/ has its own conftest)."""

from __future__ import annotations

import pytest

from testkit import FAST_ENV, new_project

# One thread each: on 2 shared cores, torch/LightGBM default thread pools oversubscribe badly.
TINY_ENV = {**FAST_ENV, "TT_EPOCHS": "2", "IALS_ITERATIONS": "2", "TQDM_DISABLE": "1", "TORCH_THREADS": "1",
            "LGBM_NUM_THREADS": "1"}


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
    from recsys.data.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("ml-tiny"), n_users=200, n_items=300, seed=1)


@pytest.fixture(scope="module")
def steps_run(pipeline_env, tiny_data, tmp_path_factory) -> StepOutputs:
    """Every component's function called directly, in pipeline order, on the tiny dataset (model
    settings: ``history_len`` given as a parameter, the others from the environment)."""
    from kfp.dsl import Artifact, Dataset, Metrics, Model

    from components.build_index import build_index
    from components.evaluate import evaluate
    from components.features import features
    from components.ingest import ingest
    from components.materialize import materialize
    from components.package import package
    from components.register import register
    from components.skew import skew
    from components.train_ranker import train_ranker
    from components.train_two_tower import train_two_tower

    root = tmp_path_factory.mktemp("steps")
    out = StepOutputs(root)
    a = out.artifacts
    model = dict(history_len=20, embedding_dim=None, top_k_candidates=None, ranker_rounds=None)
    a["ingested"] = artifact(Dataset, root, "ingested")
    ingest.python_func(data_dir=str(tiny_data), protocol="user-temporal", ingested=a["ingested"])
    data = {"ingested": a["ingested"]}
    a["features"] = artifact(Dataset, root, "features")
    features.python_func(**data, **model, features=a["features"])
    data["features"] = a["features"]
    a["towers"] = artifact(Model, root, "towers")
    train_two_tower.python_func(**data, **model, towers=a["towers"])
    a["index"] = artifact(Model, root, "index")
    build_index.python_func(**data, towers=a["towers"], **model, index=a["index"])
    a["ranker"] = artifact(Model, root, "ranker")
    train_ranker.python_func(**data, towers=a["towers"], index=a["index"], **model, ranker=a["ranker"])
    trained = {**data, "towers": a["towers"], "index": a["index"], "ranker": a["ranker"]}
    a["report"], a["metrics"] = artifact(Artifact, root, "report"), artifact(Metrics, root, "metrics")
    evaluate.python_func(**trained, **model, baselines=True, report=a["report"], metrics=a["metrics"])
    a["bundle"] = artifact(Model, root, "bundle")
    package.python_func(**trained, report=a["report"], **model, bundle=a["bundle"])
    a["registration"] = artifact(Artifact, root, "registration")
    register.python_func(bundle=a["bundle"], gate_margin=-0.002, registration=a["registration"])
    a["online"] = artifact(Artifact, root, "online")
    materialize.python_func(bundle=a["bundle"], feast_project=None, online=a["online"])
    a["kl"] = artifact(Metrics, root, "kl")
    out.returns["skew"] = skew.python_func(bundle=a["bundle"], online=a["online"], feast_project=None, threshold=0.1,
                                           sample_size=100, kl=a["kl"])
    return out
