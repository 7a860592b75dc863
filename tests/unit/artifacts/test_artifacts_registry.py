"""MLflow registry: metric names, the gate, registration round trip (aliases, load by alias)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from recsys.artifacts.bundle import load_bundle
from recsys.artifacts.registry import (
    ModelNotFound,
    client,
    gate,
    log_and_register,
    metric_name,
    model_version,
    resolve_bundle,
)
from recsys.constants import PRIMARY_MODEL


def test_metric_names_are_sanitized():
    assert metric_name("ndcg@10") == "ndcg_at_10"
    assert metric_name("two_tower+ranker.hr@5") == "two_tower_plus_ranker.hr_at_5"


def test_gate_refuses_another_protocol_and_promotes_the_first_version():
    from recsys.config import Settings

    champ = SimpleNamespace(version="3", tags={"protocol": "loo", "ndcg_at_10": "0.1"})
    d = gate(Path("unused"), "user-temporal", champ, -0.002, Settings())
    assert not d.promoted and "protocol" in d.reason and d.decided_by == "protocol_mismatch"
    first = gate(Path("unused"), "loo", None, -0.002, Settings())
    assert first.promoted and first.decided_by == "no_champion"


@pytest.mark.integration
def test_register_gate_aliases_and_load_by_alias(trained, local_state, tmp_path):
    bundle, report = trained
    first = log_and_register(bundle, report)
    assert first.promoted and "first version" in first.reason

    worse = log_and_register(bundle, report, margin=0.05)  # needs +0.05 ndcg over itself: cannot pass
    assert not worse.promoted and "upper bound" in worse.reason and worse.decided_by == "upper_bound"
    assert worse.diff == 0.0 and worse.diff_ci95 == [0.0, 0.0]  # the same model, paired: no difference at all
    assert str(model_version("champion").version) == first.version
    assert str(model_version("challenger").version) == worse.version

    equal = log_and_register(bundle, report)  # same model: lower bound 0 > default margin -0.002
    assert equal.decided_by == "lower_bound" and "lower bound" in equal.reason
    assert equal.promoted and equal.previous_champion == first.version
    assert str(model_version("champion").version) == equal.version

    run = client().get_run(equal.run_id)
    assert run.data.metrics["ndcg_at_10"] == pytest.approx(report["models"][PRIMARY_MODEL]["ndcg@10"])
    assert run.data.tags["promoted"] == "true"
    assert local_state / "mlartifacts" in Path(equal.artifact_uri.removeprefix("file://")).parents

    local = resolve_bundle("champion")
    assert load_bundle(local).version == json.loads((Path(bundle) / "manifest.json").read_text())["version"]
    downloaded = resolve_bundle("challenger", dst=tmp_path / "dl")
    assert load_bundle(downloaded).manifest["metrics"]["ndcg@10"] == pytest.approx(worse.metric)
    with pytest.raises(ModelNotFound, match="@nope"):
        resolve_bundle("nope")


def _under(uri: str, root: Path) -> bool:
    path = Path(uri.removeprefix("file://"))
    return root.resolve() in path.parents


@pytest.fixture
def mlflow_env(local_state, monkeypatch):
    """local_state without MLFLOW_ARTIFACT_ROOT; ``set(**env)`` changes the environment and the settings."""
    from recsys.config import get_settings

    monkeypatch.delenv("MLFLOW_ARTIFACT_ROOT", raising=False)

    def set_env(**env):
        for k, v in env.items():
            if v is None:
                monkeypatch.delenv(k, raising=False)
            else:
                monkeypatch.setenv(k, v)
        get_settings.cache_clear()
        return get_settings()

    return set_env


@pytest.mark.integration
def test_artifacts_go_beside_the_tracking_database_or_to_the_root_never_to_the_working_directory(
        trained, mlflow_env, tmp_path, monkeypatch):
    bundle, report = trained
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    (tmp_path / "elsewhere").mkdir()
    mlflow_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/elsewhere/mlflow.db")
    first = log_and_register(bundle, report)
    assert _under(first.artifact_uri, tmp_path / "elsewhere" / "mlartifacts"), first.artifact_uri
    assert (Path(first.artifact_uri.removeprefix("file://")) / "manifest.json").is_file()
    # The registered version's source (KServe's storageUri) is that directory.
    assert model_version("champion").source == first.artifact_uri
    assert not (cwd / "mlruns").exists() and list(cwd.iterdir()) == []

    mlflow_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/other/mlflow.db",
               MLFLOW_ARTIFACT_ROOT=(tmp_path / "root").as_uri())
    rooted = log_and_register(bundle, report)
    assert _under(rooted.artifact_uri, tmp_path / "root"), rooted.artifact_uri
    assert model_version("champion").source == rooted.artifact_uri
    assert not (tmp_path / "other" / "mlartifacts").exists() and list(cwd.iterdir()) == []


def test_an_existing_experiment_elsewhere_than_the_artifact_root_is_an_error_naming_both(mlflow_env, tmp_path):
    from recsys.artifacts.locations import ArtifactLocationError, experiment_id

    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    s = mlflow_env(MLFLOW_TRACKING_URI=uri, MLFLOW_ARTIFACT_ROOT=(tmp_path / "a").as_uri())
    exp = experiment_id(client(s), s)
    assert experiment_id(client(s), s) == exp
    assert client(s).get_experiment(exp).artifact_location == (tmp_path / "a").as_uri()
    assert experiment_id(client(s), mlflow_env(MLFLOW_ARTIFACT_ROOT=str(tmp_path / "a"))) == exp  # same place
    moved = mlflow_env(MLFLOW_ARTIFACT_ROOT=(tmp_path / "b").as_uri())
    with pytest.raises(ArtifactLocationError) as err:
        experiment_id(client(moved), moved)
    assert (tmp_path / "a").as_uri() in str(err.value) and (tmp_path / "b").as_uri() in str(err.value)
    # Unset, the experiment keeps where it is.
    assert experiment_id(client(s), mlflow_env(MLFLOW_ARTIFACT_ROOT=None)) == exp


def test_artifact_location_rules(tmp_path, monkeypatch):
    from recsys.artifacts.locations import ArtifactLocationError, artifact_location
    from recsys.config import Settings

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACT_ROOT"):
        monkeypatch.delenv(name, raising=False)

    def loc(**kw):
        return artifact_location(Settings(**kw))

    runs = tmp_path / "runs"
    assert loc(runs_dir=runs) == (runs / "mlartifacts").as_uri()  # the default store, as before
    assert loc(mlflow_tracking_uri=f"sqlite:///{tmp_path}/x/mlflow.db") == (tmp_path / "x" / "mlartifacts").as_uri()
    assert loc(mlflow_tracking_uri=(tmp_path / "y" / "mlruns").as_uri()) == (tmp_path / "y" / "mlartifacts").as_uri()
    for server in ("http://mlflow.mlflow:5000", "https://mlflow.example.com", "databricks"):
        assert loc(mlflow_tracking_uri=server) is None, server  # the server's own default
    assert loc(mlflow_tracking_uri="http://mlflow:5000", mlflow_artifact_root="s3://models/recsys/") == \
        "s3://models/recsys"
    assert loc(mlflow_artifact_root=str(tmp_path / "r")) == (tmp_path / "r").as_uri()
    with pytest.raises(ArtifactLocationError, match="MLFLOW_ARTIFACT_ROOT"):
        loc(mlflow_tracking_uri="postgresql://mlflow@db/mlflow")
