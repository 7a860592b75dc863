"""`make pipeline-run` / `make pipeline-schedule` against a stand-in ``kfp.Client`` that records
its calls (no network): the service account, the cluster objects compiled into the submitted IR,
and the checked-in YAML left alone."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from pipelines import __main__ as cli
from pipelines.training_pipeline import YAML_PATH


class FakeClient:
    """Records ``kfp.Client`` calls; reads the submitted package while it exists."""

    calls: list[tuple[str, dict]] = []

    def __init__(self, host=None, **kwargs):
        self.calls.append(("init", {"host": host, **kwargs}))

    @staticmethod
    def _spec(path: str) -> list[dict]:
        return list(yaml.safe_load_all(Path(path).read_text()))

    def create_run_from_pipeline_package(self, pipeline_file, arguments=None, **kwargs):
        self.calls.append(("run", {"spec": self._spec(pipeline_file), "arguments": arguments, **kwargs}))
        return SimpleNamespace(run_id="run-1")

    def create_experiment(self, name, **kwargs):
        self.calls.append(("experiment", {"name": name, **kwargs}))
        return SimpleNamespace(experiment_id="exp-1")

    def create_recurring_run(self, experiment_id, **kwargs):
        spec = self._spec(kwargs["pipeline_package_path"])
        self.calls.append(("recurring", {"experiment_id": experiment_id, "spec": spec, **kwargs}))
        return SimpleNamespace(recurring_run_id="rr-1")


@pytest.fixture
def client(monkeypatch):
    import kfp

    FakeClient.calls = []
    monkeypatch.setattr(kfp, "Client", FakeClient)
    monkeypatch.setattr(cli, "check_host", lambda host, timeout=5.0: None)
    return FakeClient.calls


def _call(calls, kind):
    (found,) = [c for k, c in calls if k == kind]
    return found


def _executors(spec: list[dict]) -> dict:
    return spec[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_run_submits_as_the_pipeline_service_account(client, capsys):
    golden = YAML_PATH.read_bytes()
    assert cli.main(["run", "--host", "http://kfp.test"]) == 0
    run = _call(client, "run")
    assert run["service_account"] == cli.DEFAULT_SERVICE_ACCOUNT == "recommender-pipeline"
    assert run["enable_caching"] is False and run["experiment_name"] == "movielens-recommender"
    assert "gate_margin" not in run["arguments"]
    executors = _executors(run["spec"])
    assert executors["exec-register"]["secretAsEnv"][0]["secretName"] == "mlflow-store"
    assert executors["exec-ingest"]["pvcMount"][0]["mountPath"] == "/data"
    assert YAML_PATH.read_bytes() == golden
    assert "run-1" in capsys.readouterr().out


def test_run_with_other_cluster_names_and_no_service_account(client):
    golden = YAML_PATH.read_bytes()
    assert cli.main(["run", "--host", "kfp.test", "--service-account", "", "--mlflow-secret", "team-mlflow",
                     "--data-pvc", "team-data", "--data-mount-path", "/mnt/data", "--gate-margin", "0.001"]) == 0
    assert _call(client, "init")["host"] == "http://kfp.test"
    run = _call(client, "run")
    assert run["service_account"] is None  # the namespace's default
    assert run["arguments"]["gate_margin"] == 0.001
    executors = _executors(run["spec"])
    assert {e["secretName"] for e in executors["exec-register"]["secretAsEnv"]} == {"team-mlflow"}
    (mount,) = executors["exec-ingest"]["pvcMount"]
    assert mount["mountPath"] == "/mnt/data" and mount["pvcNameParameter"]["runtimeValue"]["constant"] == "team-data"
    assert YAML_PATH.read_bytes() == golden  # a variant is compiled aside, never over the checked-in IR


def test_schedule_passes_the_service_account_and_the_archive_on_the_mounted_volume(client):
    assert cli.main(["schedule", "--host", "http://kfp.test"]) == 0
    job = _call(client, "recurring")
    assert job["service_account"] == "recommender-pipeline" and job["experiment_id"] == "exp-1"
    assert job["params"]["events_dir"] == "/data/events/archive"
    FakeClient.calls.clear()
    assert cli.main(["schedule", "--host", "http://kfp.test", "--service-account", "trainer",
                     "--data-mount-path", "/mnt/data"]) == 0
    job = _call(client, "recurring")
    assert job["service_account"] == "trainer" and job["params"]["events_dir"] == "/mnt/data/events/archive"
    assert _executors(job["spec"])["exec-ingest"]["pvcMount"][0]["mountPath"] == "/mnt/data"
    FakeClient.calls.clear()
    assert cli.main(["schedule", "--host", "http://kfp.test", "--service-account", ""]) == 0
    assert _call(client, "recurring")["service_account"] is None


def test_schedule_without_a_data_volume_needs_an_events_dir(client, capsys):
    assert cli.main(["schedule", "--host", "http://kfp.test", "--data-pvc", ""]) == cli.EXIT_UNREACHABLE
    assert "--events-dir" in capsys.readouterr().err and client == []
    assert cli.main(["schedule", "--host", "http://kfp.test", "--data-pvc", "", "--events-dir", "/app/events"]) == 0
    job = _call(client, "recurring")
    assert job["params"]["events_dir"] == "/app/events" and len(job["spec"]) == 2  # the Secret still
    assert "exec-ingest" not in _executors(job["spec"])
