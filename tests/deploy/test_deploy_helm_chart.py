"""Helm chart: lint, render for every values set, conventions (labels, security, exposure)."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

import deploytool
from deploytool import REPO, by_kind

CHART = REPO / "helm" / "recommender"
VALUE_SETS = [name for name, _ in deploytool.values_sets(CHART)]


def helm_sets(rendered):
    return {k.split("/", 1)[1]: v for k, v in rendered.items() if k.startswith("recommender/")}


@pytest.mark.parametrize("name,values", deploytool.values_sets(CHART), ids=VALUE_SETS)
def test_helm_lint_strict(staged_chart, name, values):
    out = deploytool.helm_lint(staged_chart, values)
    assert "0 chart(s) failed" in out


def test_every_values_set_renders(rendered):
    sets = helm_sets(rendered)
    assert set(sets) == set(VALUE_SETS)
    for name, documents in sets.items():
        kinds = {d["kind"] for d in documents}
        assert {"InferenceService", "ConfigMap"} <= kinds, name


def test_default_render_has_every_object(rendered):
    kinds = sorted(d["kind"] for d in helm_sets(rendered)["default"])
    for k in ("InferenceService", "ConfigMap", "ServiceAccount", "Service", "ServiceMonitor",
              "PrometheusRule", "NetworkPolicy", "Pod"):
        assert k in kinds, kinds


def test_values_schema_rejects_unknown_and_bad_values(staged_chart):
    for bad in ("foo=1", "inferenceService.deploymentMode=Knative", "model.storageUri=ftp://x",
                "containerSecurityContext.allowPrivilegeEscalation=true"):
        proc = subprocess.run([deploytool.tool("helm"), "template", "r", str(staged_chart), "--set", bad],
                              capture_output=True, text=True)
        assert proc.returncode != 0, bad
        assert "schema" in proc.stderr, proc.stderr


def test_every_value_is_commented():
    """Each key has a comment right above it, or sits inside a commented block."""
    lines = (CHART / "values.yaml").read_text().splitlines()

    def indent(line: str) -> int:
        return len(line) - len(line.lstrip())

    def commented(i: int) -> bool:
        if i > 0 and lines[i - 1].strip().startswith("#"):
            return True
        for j in range(i - 1, -1, -1):  # parent key: nearest key line with a smaller indent
            s = lines[j].strip()
            if s and not s.startswith("#") and indent(lines[j]) < indent(lines[i]):
                return commented(j)
        return False

    missing = [f"{i + 1}: {line.strip()}" for i, line in enumerate(lines)
               if line.strip() and not line.strip().startswith(("#", "- ")) and ":" in line
               and not commented(i)]
    assert not missing, "values without a comment:\n" + "\n".join(missing)


def test_schema_file_is_valid_json_and_covers_top_level_keys():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert schema["additionalProperties"] is False
    assert set(values) <= set(schema["properties"])


def test_selector_labels_have_no_chart_version_and_names_fit(rendered):
    for name, documents in helm_sets(rendered).items():
        for d in documents:
            assert len(d["metadata"]["name"]) <= 63
            sel = (d.get("spec") or {}).get("selector") or {}
            sel = sel.get("matchLabels", sel) if isinstance(sel, dict) else {}
            assert "helm.sh/chart" not in sel and "app.kubernetes.io/version" not in sel, (name, d["kind"])
            assert d["metadata"]["labels"]["app.kubernetes.io/name"] == "recommender"


def _containers(isvc: dict) -> list[tuple[dict, dict]]:
    out = []
    for comp in ("predictor", "transformer"):
        spec = isvc["spec"].get(comp)
        if spec:
            out += [(spec, c) for c in spec["containers"]]
    return out


def test_pod_security_and_tmp(rendered):
    for name, documents in helm_sets(rendered).items():
        pods = [(d["spec"], c) for d in by_kind(documents, "Pod") for c in d["spec"]["containers"]]
        for isvc in by_kind(documents, "InferenceService"):
            pods += _containers(isvc)
            for spec, c in _containers(isvc):
                assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
                assert any(v["name"] == "tmp" and "emptyDir" in v for v in spec["volumes"])
        for spec, c in pods:
            psc, csc = spec["securityContext"], c["securityContext"]
            assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 1000, name
            assert csc["readOnlyRootFilesystem"] is True and csc["allowPrivilegeEscalation"] is False
            assert csc["capabilities"]["drop"] == ["ALL"]


def test_nothing_exposed_publicly(rendered):
    for name, documents in helm_sets(rendered).items():
        assert not by_kind(documents, "Ingress"), name
        for svc in by_kind(documents, "Service"):
            assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", name
        for isvc in by_kind(documents, "InferenceService"):
            assert isvc["metadata"]["labels"]["networking.kserve.io/visibility"] == "cluster-local"


def test_separate_inference_service(rendered):
    (isvc,) = by_kind(helm_sets(rendered)["separate"], "InferenceService")
    pred, = isvc["spec"]["predictor"]["containers"]
    trans, = isvc["spec"]["transformer"]["containers"]
    assert pred["name"] == trans["name"] == "kserve-container"
    assert pred["command"] == ["python", "-m", "predictors.predictor"]
    assert trans["command"] == ["python", "-m", "predictors.transformer"]
    assert "--predictor_protocol=v2" in trans["args"]
    env = {e["name"]: e for e in pred["env"]}
    assert env["STORAGE_URI"]["value"].startswith("s3://") and env["PROTOCOL"]["value"] == "v2"
    tenv = {e["name"]: e for e in trans["env"]}
    assert tenv["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "recommender-redis"
    assert "$(REDIS_PASSWORD)" in tenv["REDIS_URL"]["value"]
    assert trans["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    ann = isvc["metadata"]["annotations"]
    assert ann["autoscaling.knative.dev/target"] == "8"
    assert isvc["spec"]["predictor"]["minReplicas"] == 1 and isvc["spec"]["predictor"]["maxReplicas"] == 5


@pytest.mark.parametrize("name", ["default", "collocated"])
def test_collocated_inference_service(rendered, name):
    """Collocated is the default layout (the one that met the latency targets, docs/serving.md)."""
    (isvc,) = by_kind(helm_sets(rendered)[name], "InferenceService")
    assert "transformer" not in isvc["spec"]
    pred, trans = isvc["spec"]["predictor"]["containers"]
    assert (pred["name"], trans["name"]) == ("kserve-container", "transformer-container")
    assert "--predictor_host=localhost:8086" in trans["args"] and "--predictor_protocol=grpc-v2" in trans["args"]
    assert "--grpc_port=8086" in pred["args"]
    assert "--http_port=8085" in pred["args"]
    assert "STORAGE_URI" in {e["name"] for e in pred["env"]}
    assert "STORAGE_URI" not in {e["name"] for e in trans["env"]}
    if name == "collocated":
        assert pred["image"].split("@")[1].startswith("sha256:")


def test_network_policy_lets_only_the_transformer_reach_redis(rendered):
    for name, component in (("default", "predictor"), ("separate", "transformer"), ("collocated", "predictor")):
        (np,) = by_kind(helm_sets(rendered)[name], "NetworkPolicy")
        assert np["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "redis"
        first = np["spec"]["ingress"][0]
        assert first["from"][0]["podSelector"]["matchLabels"]["component"] == component
        assert first["ports"] == [{"port": 6379, "protocol": "TCP"}]
    assert not by_kind(helm_sets(rendered)["minimal"], "NetworkPolicy")


def test_grafana_dashboard_configmap(rendered):
    cms = [c for c in by_kind(helm_sets(rendered)["default"], "ConfigMap")
           if c["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert len(cms) == 1
    dash = json.loads(cms[0]["data"]["recommender.json"])
    assert dash == json.loads((CHART / "dashboards" / "recommender.json").read_text())


def test_connection_test_calls_health_ready(rendered):
    (pod,) = by_kind(helm_sets(rendered)["default"], "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["containers"][0]["args"][-1].endswith("/v2/health/ready")


def test_subchart_conditions_declared():
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    deps = {d["name"]: d for d in meta["dependencies"]}
    assert deps["redis"]["condition"] == "redis.enabled"
    assert deps["kube-prometheus-stack"]["condition"] == "kube-prometheus-stack.enabled"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["redis"]["enabled"] is False and values["kube-prometheus-stack"]["enabled"] is False
    assert values["redis"]["auth"]["existingSecret"] and values["redis"]["master"]["persistence"]["enabled"]


def test_redis_enabled_uses_release_redis(rendered):
    (isvc,) = by_kind(helm_sets(rendered)["prod"], "InferenceService")
    (trans,) = [c for c in isvc["spec"]["predictor"]["containers"] if c["name"] == "transformer-container"]
    env = {e["name"]: e for e in trans["env"]}
    assert "@recommender-redis-master:6379/0" in env["REDIS_URL"]["value"]


def test_in_process_inference_service(rendered):
    """inProcess: one container, the transformer holding the models; Redis, probes and metrics follow it."""
    docs = helm_sets(rendered)["inprocess"]
    (isvc,) = by_kind(docs, "InferenceService")
    assert "transformer" not in isvc["spec"]
    (c,) = isvc["spec"]["predictor"]["containers"]
    assert c["name"] == "kserve-container" and c["command"] == ["python", "-m", "predictors.transformer"]
    assert "--collocated" in c["args"] and not any(a.startswith("--predictor_") for a in c["args"])
    env = {e["name"]: e for e in c["env"]}
    assert env["STORAGE_URI"]["value"].startswith("s3://") and env["PROTOCOL"]["value"] == "v2" and "REDIS_URL" in env
    assert c["ports"][0]["containerPort"] == 8080 and c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["resources"]["limits"]["memory"] == "2Gi"  # the predictor's: the models live here
    (np,) = by_kind(docs, "NetworkPolicy")
    assert np["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["component"] == "predictor"
    (svc,) = [s for s in by_kind(docs, "Service") if s["metadata"]["name"].endswith("-metrics")]
    assert [p["name"] for p in svc["spec"]["ports"]] == ["http-metrics"]
    (pod,) = by_kind(docs, "Pod")
    assert "-predictor." in pod["spec"]["containers"][0]["args"][-1]
