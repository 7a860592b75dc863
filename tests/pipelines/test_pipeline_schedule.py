"""`make pipeline-schedule`: the recurring run the real ``kfp.Client`` sends, captured by a stand-in
for the KFP API server on loopback (no cluster here). The request must carry the compiled
pipeline, a six-field cron, the event archive and no fixed cut-off (each run uses its own start)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipelines.__main__ import DEFAULT_CRON, main
from pipelines.training_pipeline import DEFAULT_CLUSTER, PIPELINE_NAME

CLUSTER_EVENTS_DIR = DEFAULT_CLUSTER.events_dir()


class KfpApiStandIn(BaseHTTPRequestHandler):
    """Answers the v2beta1 calls kfp.Client makes for create_experiment + create_recurring_run."""

    requests: list[tuple[str, str, dict]] = []

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server's name
        self.requests.append(("GET", self.path, {}))
        self._answer({"experiments": []} if self.path.startswith("/apis/v2beta1/experiments") else {})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        self.requests.append(("POST", self.path, body))
        if self.path.startswith("/apis/v2beta1/experiments"):
            self._answer({"experiment_id": "exp-1", "display_name": body.get("display_name")})
        else:
            self._answer({**body, "recurring_run_id": "rr-1"})


@pytest.fixture
def kfp_api():
    KfpApiStandIn.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), KfpApiStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", KfpApiStandIn.requests
    server.shutdown()
    server.server_close()


def test_schedule_sends_a_recurring_run_of_the_compiled_pipeline(kfp_api, capsys):
    host, requests = kfp_api
    assert main(["schedule", "--host", host, "--data-dir", "/data/ml-1m", "--service-account", "trainer"]) == 0
    posts = [(path, body) for method, path, body in requests if method == "POST"]
    assert [p for p, _ in posts] == ["/apis/v2beta1/experiments", "/apis/v2beta1/recurringruns"]
    run = posts[1][1]
    assert run["experiment_id"] == "exp-1"
    assert run["trigger"]["cron_schedule"]["cron"] == DEFAULT_CRON
    assert run["mode"] == "ENABLE" and run["max_concurrency"] == 1 and run["no_catchup"] is True
    assert run["service_account"] == "trainer"
    # With a platform spec kfp.Client sends {"pipeline_spec": IR, "platform_spec": Kubernetes config}.
    ir, platform = run["pipeline_spec"]["pipeline_spec"], run["pipeline_spec"]["platform_spec"]
    assert ir["pipelineInfo"]["name"] == PIPELINE_NAME
    params = run["runtime_config"]["parameters"]
    assert params["events_dir"] == CLUSTER_EVENTS_DIR == "/data/events/archive" and params["data_dir"] == "/data/ml-1m"
    assert "events_until" not in params
    # Every parameter sent is one the compiled pipeline declares.
    declared = ir["root"]["inputDefinitions"]["parameters"]
    assert set(params) <= set(declared)
    assert "gate_margin" not in params  # unset: the image's GATE_MARGIN decides
    # The platform spec travels with the pipeline: the MLflow Secret and the data volume.
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {"exec-register", "exec-ingest"}
    assert "rr-1" in capsys.readouterr().out


def test_a_cron_kfp_would_refuse_is_named_before_any_call(kfp_api, capsys):
    host, requests = kfp_api
    assert main(["schedule", "--host", host, "--cron", "0 3 * * *"]) == 2
    assert "six fields" in capsys.readouterr().err
    assert requests == []


def test_schedule_without_a_host_says_what_to_set(monkeypatch, capsys):
    monkeypatch.delenv("KFP_HOST", raising=False)
    assert main(["schedule"]) == 2
    assert "KFP_HOST" in capsys.readouterr().err
