"""Every value of the chart acts, and every configuration key a container receives is read.

Two ways a Helm value can silently do nothing: the templates never use it, or they put it in
a ConfigMap / env variable no process reads (FEAST_ENV, MODEL_VERSION, EMBEDDING_DIM... once
did). The first test changes each leaf of values.yaml and checks that the render changes; the
second checks every ConfigMap key and env name of the project's containers against the
variables recsys.config.Settings reads (plus the few KServe itself reads, and names expanded
into another variable by the kubelet's $(VAR) syntax).
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml

import deploytool
from deploytool import REPO, by_kind

CHART = REPO / "helm" / "recommender"
# KServe reads these on custom containers (storage initializer, protocol of the predictor).
KSERVE_ENV = {"STORAGE_URI", "PROTOCOL"}
ARM_B = 'json:experiment.arms=[{"name":"b","model":"7","storageUri":"s3://m/b","share":0.5}]'
EXPERIMENT = ["experiment.id=e", "mlflow.trackingUri=http://m:5000", ARM_B]
# Values that need another value to be set before they can act (exact path, or a prefix ending in ".").
PREREQUISITES: dict[str, list[str]] = {
    "canary.trafficPercent": ["canary.storageUri=s3://m/new"],
    "redis.": ["redis.enabled=true"],
    "experiment.": EXPERIMENT,
    "mlflow.": EXPERIMENT,
    "predictor.httpPort": ["inferenceService.collocated=false"],
    "predictor.grpcPort": ["inferenceService.collocated=false"],
    "nodeSelector": ["knative.podSpecScheduling=true"],
    "tolerations": ["knative.podSpecScheduling=true"],
    "affinity": ["knative.podSpecScheduling=true"],
}
# Values whose whole effect is to let other values through the chart's checks (tested there).
PERMITS = {
    "knative.podSpecScheduling": "test_deploy_helm_chart.py::test_values_the_platform_would_reject_fail_to_render",
}
# Fixed by values.schema.json (a chart that runs as root is not offered): the one allowed value.
CONSTANTS = {"podSecurityContext.runAsNonRoot", "containerSecurityContext.runAsNonRoot",
             "containerSecurityContext.allowPrivilegeEscalation"}
# New values chosen where "change it" needs a valid different value, and pairs that must move together.
CHANGES: dict[str, list[str]] = {
    "inferenceService.deploymentMode": ["inferenceService.deploymentMode=RawDeployment"],
    "inferenceService.autoscaling.metric": ["inferenceService.autoscaling.metric=rps"],
    "inferenceService.autoscaling.minReplicas": ["inferenceService.autoscaling.minReplicas=2"],
    "image.pullPolicy": ["image.pullPolicy=Always"],
    "image.digest": ["image.digest=sha256:" + "1" * 64],
    "model.storageUri": ["model.storageUri=s3://m/other"],
    "model.name": ["model.name=other"],
    "config.logLevel": ["config.logLevel=DEBUG"],
    "config.runsDir": ["config.runsDir=/tmp/elsewhere"],
    "experiment.control.share": ["json:experiment.control.share=0.25",
                                 'json:experiment.arms=[{"name":"b","model":"7","storageUri":"s3://m/b","share":0.75}]'],
    "experiment.control.name": ["experiment.control.name=baseline"],
    "experiment.control.model": ["experiment.control.model=3"],
    "experiment.arms": ["json:experiment.control.share=0.4", ARM_B.replace("]", ',{"name":"c","model":"8",'
                                                                          '"storageUri":"s3://m/c","share":0.1}]')],
    "experiment.id": ["experiment.id=e2"],
    "mlflow.trackingUri": ["mlflow.trackingUri=http://other:5000"],
    "canary.storageUri": ["canary.storageUri=s3://m/new"],
    "inferenceService.inProcess": ["inferenceService.inProcess=true"],
    "predictor.httpPort": ["predictor.httpPort=9080"], "predictor.grpcPort": ["predictor.grpcPort=9081"],
    "predictor.collocatedHttpPort": ["predictor.collocatedHttpPort=8095"],
    "predictor.collocatedGrpcPort": ["predictor.collocatedGrpcPort=8096"],
    "transformer.httpPort": ["transformer.httpPort=8090"], "transformer.grpcPort": ["transformer.grpcPort=8091"],
    "knative.multiContainerProbing": ["knative.multiContainerProbing=true"],
    "consumer.archive.existingClaim": ["consumer.archive.existingClaim=shared-data"],
    "redis.auth.enabled": ["redis.auth.enabled=false"],
    "podSecurityContext.seccompProfile.type": ["podSecurityContext.seccompProfile.type=Localhost"],
    "containerSecurityContext.seccompProfile.type": ["containerSecurityContext.seccompProfile.type=Localhost"],
    "networkPolicy.metricsNamespaceSelector.kubernetes\\.io/metadata\\.name":
        ["networkPolicy.metricsNamespaceSelector.kubernetes\\.io/metadata\\.name=observability"],
}
# What one more entry of a list value looks like, by the value's name.
LIST_ITEMS: dict[str, Any] = {
    "imagePullSecrets": {"name": "regcred"}, "extraEnv": {"name": "X_EXTRA", "value": "1"}, "extraArgs": "--extra",
    "tolerations": {"key": "k", "operator": "Exists"}, "storageSecrets": "more-s3",
    "extraRedisClients": {"podSelector": {"matchLabels": {"app": "x"}}}, "arms": {"name": "c", "model": "8",
    "storageUri": "s3://m/c", "share": 0.1}, "drop": "NET_RAW", "accessModes": "ReadWriteMany",
}
# Passed through to a remote chart that cannot be fetched offline (its objects are stubbed).
PASSTHROUGH = ("kube-prometheus-stack.",)


def leaves(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, value) of every leaf; dots inside a key are escaped as --set wants them."""
    if isinstance(tree, dict) and tree:
        return [leaf for k, v in tree.items() for leaf in leaves(v, prefix + k.replace(".", "\\.") + ".")]
    return [(prefix.rstrip("."), tree)]


def changed(path: str, value: Any) -> list[str]:
    if path in CHANGES:
        return CHANGES[path]
    if isinstance(value, bool):
        return [f"{path}={str(not value).lower()}"]
    if isinstance(value, int):
        return [f"{path}={value + 1}"]
    if isinstance(value, float):
        return [f"json:{path}={value / 2:g}"]
    if isinstance(value, list):
        item = LIST_ITEMS.get(path.rsplit(".", 1)[-1], "extra")
        return ["json:" + path + "=" + json.dumps(value + [item])]
    if isinstance(value, dict):  # an empty map: one entry
        key = "X_EXTRA" if path.endswith("extra") else "extra.example.com/key"
        return [f"{path}.{key.replace('.', chr(92) + '.')}=v"]
    text = str(value)
    if text.isdigit():  # a string of digits (a label value): keep it a string
        return [f"str:{path}={text}0"]
    m = re.fullmatch(r"(\d+)(Mi|Gi|m|s)", text)
    if m:
        return [f"{path}={int(m.group(1)) + 1}{m.group(2)}"]
    if text == "":
        return [f"{path}=other"]
    return [f"{path}={text}x" if not text[-1].isdigit() else f"{path}={text}0"]


def prerequisites(path: str) -> list[str]:
    if path in PREREQUISITES:
        return PREREQUISITES[path]
    return next((pre for key, pre in PREREQUISITES.items() if key.endswith(".") and path.startswith(key)), [])


def render(staged, items: list[str]) -> str:
    cmd = [deploytool.tool("helm"), "template", "r", str(staged)]
    for item in items:
        kind, _, rest = item.partition(":") if item.startswith(("json:", "str:")) else ("", "", item)
        cmd += [{"json": "--set-json", "str": "--set-string", "": "--set"}[kind], rest]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ValueError(f"{items}: {proc.stderr.strip()}")
    return proc.stdout


def test_every_value_changes_the_render(staged_chart):
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    inert, baselines = [], {}
    for path, value in leaves(values):
        if path.startswith(PASSTHROUGH) or path in CONSTANTS or path in PERMITS or path == "redis.enabled":
            continue
        pre = prerequisites(path)
        try:
            if tuple(pre) not in baselines:
                baselines[tuple(pre)] = render(staged_chart, pre)
            if render(staged_chart, pre + changed(path, value)) == baselines[tuple(pre)]:
                inert.append(path)
        except ValueError as exc:
            inert.append(f"{path}: the test's change does not render: {exc}")
    assert not inert, "values that change nothing in the rendered manifests:\n" + "\n".join(inert)


def settings_variables() -> set[str]:
    from recsys.config import Settings

    return {name.upper() for name in Settings.model_fields}


def project_containers(documents: list[dict]) -> list[dict]:
    out = []
    for d in documents:
        spec = d.get("spec") or {}
        comps = [spec[c] for c in ("predictor", "transformer") if c in spec] if d["kind"] == "InferenceService" \
            else [spec["template"]["spec"]] if d["kind"] in ("Deployment", "StatefulSet") else []
        out += [c for comp in comps for c in comp["containers"] if c.get("command", [""])[0] == "python"]
    return out


@pytest.mark.parametrize("name", ["recommender/default", "recommender/separate", "recommender/inprocess",
                                  "recommender/prod",
                                  "manifests/dev", "manifests/prod"])
def test_every_configuration_key_a_container_gets_is_read(rendered, name):
    documents = rendered[name]
    known = settings_variables() | KSERVE_ENV
    config_maps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind(documents, "ConfigMap")}
    containers = project_containers(documents)
    assert containers, name
    unread = set()
    for c in containers:
        env = {e["name"]: e.get("value", "") for e in c.get("env", [])}
        for ref in c.get("envFrom", []):
            if "configMapRef" in ref:
                env.update(config_maps[ref["configMapRef"]["name"]])
        expanded = {m for v in env.values() for m in re.findall(r"\$\((\w+)\)", str(v))}
        unread |= {k for k in env if k not in known and k not in expanded}
    assert not unread, f"{name}: keys no process reads: {sorted(unread)}"


def image_env() -> dict[str, str]:
    """ENV of the image the containers run (the Dockerfile's last stage)."""
    import sys

    sys.path.insert(0, str(REPO / "scripts"))
    from smoke.workloads import dockerfile_runtime

    env, workdir, _ = dockerfile_runtime(REPO / "Dockerfile")
    return {**env, "WORKDIR": workdir}


def written_paths(env: dict[str, str], workdir: str) -> dict[str, str]:
    """Where a server / consumer writes, as recsys.config.Settings resolves it from ``env``."""
    from pathlib import PurePosixPath as P

    def absolute(value: str) -> P:
        return P(value) if value.startswith("/") else P(workdir) / value

    runs = absolute(env.get("RUNS_DIR", "runs"))
    cache = absolute(env.get("CACHE_DIR", f"{env.get('HOME', '/root')}/.cache/recsys"))
    return {"RUNS_DIR (Feast registry, local event log)": str(runs),
            "SPOOL_DIR": str(absolute(env["SPOOL_DIR"]) if "SPOOL_DIR" in env else runs / "spool"),
            "EVENT_ARCHIVE_DIR": str(absolute(env["EVENT_ARCHIVE_DIR"]) if "EVENT_ARCHIVE_DIR" in env
                                     else runs / "events" / "archive"),
            "RANKER_COMPILE_DIR": str(absolute(env["RANKER_COMPILE_DIR"]) if "RANKER_COMPILE_DIR" in env
                                      else cache / "compiled"),
            "MPLCONFIGDIR": str(absolute(env.get("MPLCONFIGDIR", f"{env.get('HOME', '/root')}/.config/matplotlib")))}


@pytest.mark.parametrize("name", ["recommender/default", "recommender/separate", "recommender/inprocess",
                                  "recommender/prod", "manifests/dev", "manifests/prod"])
def test_every_path_a_process_writes_is_on_a_writable_volume(rendered, name):
    """The root filesystem is read-only: each directory the settings resolve to (RUNS_DIR was
    the relative `runs`, i.e. /app/runs, and the transformer died creating it) must lie under
    a volume the container mounts read-write."""
    documents = rendered[name]
    base = image_env()
    config_maps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind(documents, "ConfigMap")}
    problems = []
    for c in project_containers(documents):
        env = dict(base)
        for ref in c.get("envFrom", []):
            env.update(config_maps.get(ref.get("configMapRef", {}).get("name"), {}))
        env.update({e["name"]: str(e["value"]) for e in c.get("env", []) if "value" in e})
        writable = [m["mountPath"] for m in c.get("volumeMounts", []) if not m.get("readOnly")]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        for what, path in written_paths(env, base["WORKDIR"]).items():
            if not any(path == w or path.startswith(w.rstrip("/") + "/") for w in writable):
                problems.append(f"{c['name']}: {what} = {path}, not under {writable}")
    assert not problems, f"{name}:\n" + "\n".join(problems)
