"""Per-user A/B in the live transformer: arms by registry version, each with its own predictor;
variant in every answer, the same arm for a user every time, unknown variants refused, per-arm
metrics; a bad experiment refused at start; the simulation picks the better version and stays
quiet on A/A."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from servingkit import REPO, free_port, outputs, start_transformer, v2

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(bundle_dir, tmp_path_factory):
    """A private MLflow store holding the test bundle as version 1 (champion)."""
    import os

    from recsys.artifacts.registry import log_and_register
    from recsys.config import get_settings

    tmp = tmp_path_factory.mktemp("ab-registry")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    old = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "RUNS_DIR")}
    os.environ.update(MLFLOW_TRACKING_URI=uri, RUNS_DIR=str(tmp / "runs"))
    get_settings.cache_clear()
    try:
        assert log_and_register(bundle_dir).version == "1"
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        get_settings.cache_clear()
    return uri


def experiment(stack, model_b="1", share_b=0.5):
    return json.dumps({"id": "exp-test", "arms": [
        {"name": "control", "model": "champion", "predictor_host": f"127.0.0.1:{stack.predictor.http_port}",
         "share": 1 - share_b},
        {"name": "treatment", "model": model_b, "predictor_host": f"127.0.0.1:{stack.predictor_b.http_port}",
         "share": share_b}]})


@pytest.fixture(scope="module")
def ab_transformer(stack, registry, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ab")
    t = start_transformer(stack.bundle, tmp, "transformer-ab", f"127.0.0.1:{stack.predictor.http_port}",
                          ["--feature_source", "bundle"], MLFLOW_TRACKING_URI=registry,
                          AB_EXPERIMENT=experiment(stack))
    try:
        yield t.wait_ready()
    finally:
        t.stop()


def _event(user, item, **extra):
    inputs = [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [user]},
              {"name": "item_id", "datatype": "INT64", "shape": [1], "data": [item]}]
    inputs += [{"name": k, "datatype": "BYTES", "shape": [1], "data": [v]} for k, v in extra.items()]
    return {"inputs": inputs}


def test_answers_carry_a_stable_variant_and_both_arms_serve(ab_transformer, stack):
    from recsys.artifacts.bundle import load_bundle
    from recsys.online.experiment import parse_experiment

    users = sorted(load_bundle(stack.bundle).user_states())[:40]
    exp = parse_experiment(experiment(stack))
    seen = {}
    for u in users:
        r = httpx.post(f"{ab_transformer.url}/v2/models/recommender/infer", json=v2([u], k=5), timeout=30).json()
        p = r["parameters"]
        assert p["experiment"] == "exp-test" and p["variant"] == exp.assign(u).name  # the shared hash
        assert "fallback" not in p, p
        assert len(outputs(r)["item_id"]) == 5
        seen[u] = p["variant"]
    assert set(seen.values()) == {"control", "treatment"}
    again = httpx.post(f"{ab_transformer.url}/v2/models/recommender/infer", json=v2(users[:5]), timeout=30).json()
    assert again["parameters"]["variant"] == ",".join(seen[u] for u in users[:5])  # same arms, request order
    metrics = httpx.get(f"{ab_transformer.url}/metrics", timeout=10).text
    assert 'recommender_ab_answers_total{experiment="exp-test",kind="requests",variant="treatment"}' in metrics


def test_without_an_experiment_answers_carry_no_variant_and_equal_the_arms(ab_transformer, stack):
    """AB_EXPERIMENT unset (the stack's transformers): no ``variant`` / ``experiment`` parameter,
    no per-arm series, and the same items the experiment's arms give (both serve this bundle)."""
    import os

    from recsys.artifacts.bundle import load_bundle

    assert not os.environ.get("AB_EXPERIMENT"), "the stack's transformers would run an experiment"
    users = sorted(load_bundle(stack.bundle).user_states())[:6]
    for u in users:
        plain = httpx.post(f"{stack.transformer.url}/v2/models/recommender/infer", json=v2([u], k=5, use_cache=False),
                           timeout=30).json()
        assert "variant" not in plain["parameters"] and "experiment" not in plain["parameters"], plain["parameters"]
        assert "fallback" not in plain["parameters"], plain["parameters"]
        arm = httpx.post(f"{ab_transformer.url}/v2/models/recommender/infer", json=v2([u], k=5, use_cache=False),
                         timeout=30).json()
        assert arm["parameters"]["variant"] in ("control", "treatment")
        assert outputs(plain)["item_id"] == outputs(arm)["item_id"], (u, arm["parameters"]["variant"])
    metrics = httpx.get(f"{stack.transformer.url}/metrics", timeout=10).text
    assert "recommender_ab_answers_total{" not in metrics


def test_an_event_for_a_variant_the_experiment_lacks_is_refused(ab_transformer, stack):
    from recsys.artifacts.bundle import load_bundle

    b = load_bundle(stack.bundle)
    user, item = sorted(b.user_states())[0], int(b.catalog.item_ids[0])
    bad = httpx.post(f"{ab_transformer.url}/v2/models/events/infer",
                     json=_event(user, item, event_type="click", variant="treatmnet"), timeout=30)
    assert bad.status_code == 400 and "variant" in bad.text and "treatmnet" in bad.text
    ok = httpx.post(f"{ab_transformer.url}/v2/models/events/infer",
                    json=_event(user, item, event_type="impression", variant="treatment"), timeout=30)
    assert ok.status_code == 200, ok.text
    metrics = httpx.get(f"{ab_transformer.url}/metrics", timeout=10).text
    series = 'recommender_ab_events_total{event_type="impression",experiment="exp-test",variant="treatment"} 1.0'
    assert series in metrics


def _series(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not on /metrics")


def test_a_dead_arm_counts_fallbacks_for_its_own_users_only(stack, registry, tmp_path):
    """The treatment's predictor is unreachable: its users get popularity flagged predictor_down,
    the control's users in the same request are ranked, and only the treatment's per-arm fallback
    counter moves."""
    from recsys.artifacts.bundle import load_bundle
    from recsys.online.experiment import parse_experiment

    dead = json.loads(experiment(stack))
    dead["id"] = "exp-dead"
    dead["arms"][1]["predictor_host"] = f"127.0.0.1:{free_port()}"
    t = start_transformer(stack.bundle, tmp_path, "transformer-ab-dead", f"127.0.0.1:{stack.predictor.http_port}",
                          ["--feature_source", "bundle"], MLFLOW_TRACKING_URI=registry,
                          AB_EXPERIMENT=json.dumps(dead)).wait_ready()
    try:
        exp = parse_experiment(json.dumps(dead))
        users = sorted(load_bundle(stack.bundle).user_states())[:40]
        control = [u for u in users if exp.assign(u).name == "control"][:3]
        treatment = [u for u in users if exp.assign(u).name == "treatment"][:2]
        assert control and treatment
        r = httpx.post(f"{t.url}/v2/models/recommender/infer", json=v2(control + treatment, k=5, use_cache=False),
                       timeout=30).json()
        assert "predictor_down" in r["parameters"]["fallback"], r["parameters"]
        m = httpx.get(f"{t.url}/metrics", timeout=10).text
        key = 'recommender_ab_answers_total{{experiment="exp-dead",kind="{}",variant="{}"}}'
        assert _series(m, key.format("requests", "control")) == len(control)
        assert _series(m, key.format("requests", "treatment")) == len(treatment)
        assert _series(m, key.format("fallbacks", "control")) == 0
        assert _series(m, key.format("fallbacks", "treatment")) == len(treatment)
    finally:
        t.stop()


@pytest.mark.parametrize(("model_b", "share_b", "message"), [
    ("1", 0.7, "shares sum to 1.2, not 1"),
    ("challenger", 0.5, "arm 'treatment': model 'challenger' is not in the registry"),
    ("7", 0.5, "arm 'treatment': model '7' is not in the registry"),
])
def test_a_bad_experiment_is_refused_at_start(stack, registry, tmp_path, model_b, share_b, message):
    from test_serving_cli import one_error_line

    from servingkit import free_port, server_env

    exp = json.loads(experiment(stack, model_b))
    exp["arms"][0]["share"] = 0.5
    exp["arms"][1]["share"] = share_b
    env = server_env(RUNS_DIR=tmp_path / "runs", MLFLOW_TRACKING_URI=registry, AB_EXPERIMENT=json.dumps(exp))
    proc = subprocess.run([sys.executable, "-m", "predictors.transformer", "--model_name", "recommender",
                           "--model_dir", str(stack.bundle), "--predictor_host", "127.0.0.1:1", "--http_port",
                           str(free_port()), "--grpc_port", str(free_port())], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    line = one_error_line(proc)
    assert "AB_EXPERIMENT" in line and message in line


@pytest.mark.slow
def test_the_simulation_picks_the_better_version_and_aa_stays_quiet(tmp_path):
    """The default 20 A/A runs (the minimum the script accepts); exit 0 only when the better arm is
    detected and A/A stays quiet, 1 (report written) when not."""
    proc = subprocess.run([sys.executable, "scripts/ab_simulate.py", "--synthetic", "--users", "80", "--ab-runs",
                           "1", "--aa-runs", "20", "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-3000:]
    rep = json.loads((tmp_path / "ab-simulation.json").read_text())
    assert (proc.returncode == 0) == rep["checks"]["passed"], (proc.returncode, rep["checks"])
    assert rep["data"]["source"] == "synthetic" and rep["data"]["n_users"] == 300
    assert rep["ab_detected_better"] is True and rep["ab"][0]["decision"] == "ship", proc.stderr[-3000:]
    assert rep["aa_runs"] == 20 and rep["aa_false_positive_rate"] <= 0.05, proc.stderr[-3000:]
    assert proc.returncode == 0
    report = subprocess.run([sys.executable, "scripts/ab_report.py", "--out", str(tmp_path / "report"),
                             "--experiment", "", "--archive", str(tmp_path / "none")], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 2 and "at least two arms" in report.stderr  # no events: says so, exit 2
