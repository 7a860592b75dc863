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


def helm_template(staged_chart, *sets: str) -> subprocess.CompletedProcess:
    """``helm template`` with ``--set`` items (``--set-json`` for items starting with ``json:``)."""
    cmd = [deploytool.tool("helm"), "template", "r", str(staged_chart)]
    for item in sets:
        cmd += ["--set-json", item.removeprefix("json:")] if item.startswith("json:") else ["--set", item]
    return subprocess.run(cmd, capture_output=True, text=True)


ARM = '{"name": "b", "model": "challenger", "storageUri": "s3://m/b", "share": %s}'


@pytest.mark.parametrize("bad,message", [
    (["foo=1"], "schema"),
    (["inferenceService.deploymentMode=Bogus"], "schema"),
    (["model.storageUri=ftp://x"], "schema"),
    (["containerSecurityContext.allowPrivilegeEscalation=true"], "schema"),
    # What KServe's webhook rejects (issue: the chart used to render them).
    (["inferenceService.deploymentMode=RawDeployment", "inferenceService.autoscaling.metric=concurrency"],
     'metric must be one of the following: "", "cpu", "memory"'),
    (["inferenceService.deploymentMode=Standard", "inferenceService.autoscaling.metric=rps"],
     'metric must be one of the following: "", "cpu", "memory"'),
    (["inferenceService.deploymentMode=Serverless", "inferenceService.autoscaling.metric=cpu"],
     'metric must be one of the following: "", "concurrency", "rps"'),
    (["inferenceService.autoscaling.minReplicas=9"], "minReplicas 9 > maxReplicas 5"),
    (["inferenceService.deploymentMode=RawDeployment", "inferenceService.autoscaling.minReplicas=0"], "scale to zero"),
    (["inferenceService.name=Bad_Name"], "schema"),
    (["fullnameOverride=Recommender"], "not a DNS-1035 label"),
    (["predictor.collocatedGrpcPort=8080"], "are both 8080"),
    (["predictor.collocatedHttpPort=8081"], "are both 8081"),
    (["inferenceService.collocated=false", "predictor.grpcPort=8080"], "both 8080"),
    (["nodeSelector.disk=ssd"], "kubernetes.podspec-nodeselector"),
    (["experiment.id=e1", "json:experiment.arms=[%s]" % (ARM % 0.5)], "mlflow.trackingUri is required"),
    (["experiment.id=e1", "mlflow.trackingUri=http://mlflow:5000", "json:experiment.arms=[%s]" % (ARM % 0.7)],
     "sum to 1.2, not 1"),
    (["experiment.id=e1", "mlflow.trackingUri=http://mlflow:5000", "inferenceService.inProcess=true",
      "json:experiment.arms=[%s]" % (ARM % 0.5)], "inferenceService.inProcess has none"),
])
def test_values_the_platform_would_reject_fail_to_render(staged_chart, bad, message):
    proc = helm_template(staged_chart, *bad)
    assert proc.returncode != 0, bad
    assert message in proc.stderr, proc.stderr


@pytest.mark.parametrize("mode,metric", [("Knative", "rps"), ("Standard", "memory"), ("RawDeployment", ""),
                                         ("Serverless", "")])
def test_kserve_mode_names_old_and_new_render(staged_chart, mode, metric):
    proc = helm_template(staged_chart, f"inferenceService.deploymentMode={mode}",
                         f"inferenceService.autoscaling.metric={metric}")
    assert proc.returncode == 0, proc.stderr
    (isvc,) = by_kind(deploytool.docs(proc.stdout), "InferenceService")
    want = metric or ("concurrency" if mode in ("Knative", "Serverless") else "cpu")
    assert isvc["spec"]["predictor"]["scaleMetric"] == want
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode


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
            labels = d["metadata"]["labels"]
            assert labels["app.kubernetes.io/part-of"] == "movielens-recommender", (name, d["kind"])
            assert labels["app.kubernetes.io/name"] in ("recommender", "redis"), (name, d["kind"])


def _containers(isvc: dict) -> list[tuple[dict, dict]]:
    out = []
    for comp in ("predictor", "transformer"):
        spec = isvc["spec"].get(comp)
        if spec:
            out += [(spec, c) for c in spec["containers"]]
    return out


def workload_pods(documents: list[dict]) -> list[tuple[str, dict, list[dict], bool]]:
    """(what, pod-level spec, containers, on Knative) of every workload the documents start."""
    out = []
    for isvc in by_kind(documents, "InferenceService"):
        knative = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] in ("Serverless", "Knative")
        for comp in ("predictor", "transformer"):
            if spec := isvc["spec"].get(comp):
                out.append((f"{isvc['metadata']['name']}/{comp}", spec, spec["containers"], knative))
    for kind in ("Deployment", "StatefulSet"):
        for d in by_kind(documents, kind):
            spec = d["spec"]["template"]["spec"]
            out.append((d["metadata"]["name"], spec, spec.get("initContainers", []) + spec["containers"], False))
    for d in by_kind(documents, "Pod"):
        out.append((d["metadata"]["name"], d["spec"], d["spec"]["containers"], False))
    return out


def test_pod_security_and_tmp(rendered):
    """Non-root, read-only root, no capabilities, /tmp an emptyDir. On Knative the pod-level
    securityContext is left out (its webhook rejects it with the default feature flags): the
    containers carry uid, gid, non-root and seccomp themselves."""
    for name, documents in helm_sets(rendered).items():
        for what, spec, containers, knative in workload_pods(documents):
            if knative:
                assert "securityContext" not in spec, (name, what)
            else:
                assert spec["securityContext"]["runAsNonRoot"] is True, (name, what)
            for c in containers:
                csc = c["securityContext"]
                assert csc["readOnlyRootFilesystem"] is True and csc["allowPrivilegeEscalation"] is False, (name, what)
                assert csc["capabilities"]["drop"] == ["ALL"] and csc["runAsNonRoot"] is True, (name, what)
                if "test-connection" not in what and "redis" not in what:
                    assert csc["runAsUser"] == 1000 and csc["seccompProfile"] == {"type": "RuntimeDefault"}
                    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"], (name, what, c["name"])
            if "test-connection" not in what:
                assert any(v["name"] == "tmp" and "emptyDir" in v for v in spec["volumes"]), (name, what)


def test_knative_flag_turns_the_pod_security_context_on(staged_chart):
    proc = helm_template(staged_chart, "knative.podSpecSecurityContext=true")
    (isvc,) = by_kind(deploytool.docs(proc.stdout), "InferenceService")
    assert isvc["spec"]["predictor"]["securityContext"]["fsGroup"] == 1000


def test_every_server_container_has_a_startup_probe(rendered):
    """The servers listen only once the bundle is loaded and the ranker compiled: a startupProbe
    holds liveness off for startupPeriodSeconds x startupFailureThreshold, not a guessed delay."""
    for name, documents in helm_sets(rendered).items():
        for what, _, containers, knative in workload_pods(documents):
            for c in containers:
                if not c.get("command") or c["command"][:2] != ["python", "-m"]:
                    continue
                if knative and not c.get("ports"):  # Knative sidecar: no probes (multi-container-probing off)
                    assert not any(k.endswith("Probe") for k in c), (name, what, c["name"])
                    continue
                sp, lp = c["startupProbe"], c["livenessProbe"]
                assert sp["periodSeconds"] * sp["failureThreshold"] >= 120, (name, what)
                assert "initialDelaySeconds" not in lp, (name, what)


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


def test_network_policy_lets_only_the_servers_and_consumer_reach_redis(rendered):
    for name in ("default", "separate", "collocated", "inprocess"):
        (np,) = by_kind(helm_sets(rendered)[name], "NetworkPolicy")
        assert np["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "redis"
        first = np["spec"]["ingress"][0]
        servers, consumer = first["from"][:2]
        (expr,) = servers["podSelector"]["matchExpressions"]
        assert expr["key"] == "serving.kserve.io/inferenceservice" and expr["values"] == ["recommender"]
        assert consumer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "consumer"
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
    assert values["redis"]["auth"]["existingSecret"] and values["redis"]["persistence"]["enabled"]
    assert deps["redis"]["repository"] == "file://../redis"  # our own chart: no withdrawn vendor images


def test_redis_enabled_runs_the_official_image_with_persistence(rendered):
    docs = helm_sets(rendered)["prod"]
    (isvc,) = by_kind(docs, "InferenceService")
    (trans,) = [c for c in isvc["spec"]["predictor"]["containers"] if c["name"] == "transformer-container"]
    env = {e["name"]: e for e in trans["env"]}
    assert "@recommender-redis:6379/0" in env["REDIS_URL"]["value"]
    (sts,) = by_kind(docs, "StatefulSet")
    server = sts["spec"]["template"]["spec"]["containers"][0]
    assert server["image"].startswith("docker.io/library/redis:") and "bitnami" not in server["image"]
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    (conf,) = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"] == "recommender-redis"]
    lines = conf["data"]["redis.conf"].splitlines()
    assert "appendonly yes" in lines and "maxmemory-policy volatile-lru" in lines
    (svc,) = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == "recommender-redis"]
    assert svc["spec"]["ports"][0]["port"] == 6379
    for what in workload_pods(docs):
        assert "bitnami" not in json.dumps(what)


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
    (svc,) = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == "recommender-metrics"]
    assert [p["name"] for p in svc["spec"]["ports"]] == ["http-metrics"]
    (pod,) = by_kind(docs, "Pod")
    assert "-predictor." in pod["spec"]["containers"][0]["args"][-1]


def test_each_values_set_is_rendered_once_under_its_own_name(tmp_path):
    """`default` is the chart's own values: a ci/default-values.yaml rendered over it is refused."""
    names = [n for n, _ in deploytool.values_sets(REPO / "helm" / "recommender")]
    assert names[0] == "default" and len(names) == len(set(names))
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "default-values.yaml").write_text("replicas: 2\n")
    with pytest.raises(ValueError, match="rendered already"):
        deploytool.values_sets(tmp_path)
