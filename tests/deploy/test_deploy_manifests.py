"""Kubernetes schema validation (offline) of rendered and raw manifests, KServe SDK round trip."""

from __future__ import annotations

import pytest

import deploytool
from deploytool import by_kind


def all_rendered(rendered):
    return [(k, d) for k, docs in rendered.items() if not k.startswith("_") for d in docs]


def test_rendered_manifests_pass_strict_kubernetes_schemas(rendered):
    problems = [f"{k}: {p}" for k, d in all_rendered(rendered) for p in deploytool.validate_doc(d)]
    assert not problems, "\n".join(problems)


def test_raw_manifests_pass_strict_kubernetes_schemas():
    problems = [f"{f.name}: {p}" for f, d in deploytool.raw_manifest_docs() for p in deploytool.validate_doc(d)]
    assert not problems, "\n".join(problems)


def test_validator_catches_bad_objects():
    import kubernetes_validate

    with pytest.raises(kubernetes_validate.ValidationError):
        deploytool.k8s_validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dat": {}})
    isvc = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "x"},
            "spec": {"predictor": {"minReplica": 1, "containers": [{"name": "c", "image": "i", "readinesProbe": {}}]}}}
    assert deploytool.kserve_unknown_fields(isvc) == ["/spec/predictor/minReplica",
                                                       "/spec/predictor/containers[0]/readinesProbe"]


def test_every_inference_service_round_trips_through_kserve_sdk(rendered):
    isvcs = [(k, d) for k, d in all_rendered(rendered) if d["kind"] == "InferenceService"]
    isvcs += [(f.name, d) for f, d in deploytool.raw_manifest_docs() if d["kind"] == "InferenceService"]
    assert len(isvcs) >= 8
    for name, d in isvcs:
        assert deploytool.kserve_unknown_fields(d) == [], name


def test_overlays(rendered):
    dev, prod = rendered["manifests/dev"], rendered["manifests/prod"]
    (dev_isvc,), (prod_isvc,) = by_kind(dev, "InferenceService"), by_kind(prod, "InferenceService")
    assert {d["metadata"].get("namespace") for d in dev if d["kind"] != "Namespace"} == {"recommender-dev"}
    assert "transformer" in dev_isvc["spec"] and dev_isvc["spec"]["predictor"]["minReplicas"] == 0
    names = [c["name"] for c in prod_isvc["spec"]["predictor"]["containers"]]
    assert names == ["kserve-container", "transformer-container"] and "transformer" not in prod_isvc["spec"]
    assert prod_isvc["spec"]["predictor"]["maxReplicas"] == 20
    # KFP objects: service account with the MLflow/object-store secret, data PVC.
    for docs in (dev, prod):
        sas = {d["metadata"]["name"]: d for d in by_kind(docs, "ServiceAccount")}
        assert {"name": "mlflow-store"} in sas["recommender-pipeline"]["secrets"]
        assert {"name": "recommender-s3"} in sas["recommender-serving"]["secrets"]
        assert [p["metadata"]["name"] for p in by_kind(docs, "PersistentVolumeClaim")] == ["recommender-data"]
    secrets = {d["metadata"]["name"]: d for d in by_kind(dev, "Secret")}
    assert set(secrets) == {"recommender-s3", "mlflow-store", "recommender-redis"}
    assert secrets["recommender-s3"]["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"]
    assert not by_kind(prod, "Secret"), "prod secrets are created out of band"


def knative_components(rendered):
    """(set, component, spec) of every InferenceService component KServe would run on Knative."""
    for key, docs in rendered.items():
        if key.startswith("_"):
            continue
        for isvc in by_kind(docs, "InferenceService"):
            if isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] in ("Serverless", "Knative"):
                for comp in ("predictor", "transformer"):
                    if comp in isvc["spec"]:
                        yield key, f"{isvc['metadata']['name']}/{comp}", isvc["spec"][comp]


def test_knative_accepts_every_serverless_pod_spec_with_default_flags(rendered):
    """Knative's webhook (knative_fields.py: its field masks with a stock install's flags) would
    admit every Serverless component the chart and the Kustomize overlays render."""
    from knative_fields import knative_problems

    checked = list(knative_components(rendered))
    assert {k for k, _, _ in checked} >= {"recommender/default", "recommender/separate", "manifests/dev",
                                           "manifests/prod"}
    problems = [f"{k} {what}: {p}" for k, what, spec in checked for p in knative_problems(spec)]
    assert not problems, "\n".join(problems)


def test_the_knative_check_flags_what_a_stock_install_rejects():
    from knative_fields import knative_problems

    spec = {"minReplicas": 1, "securityContext": {"runAsUser": 1000}, "containers": [
        {"name": "kserve-container", "image": "x", "readinessProbe": {"httpGet": {"path": "/", "port": 8085}}},
        {"name": "transformer-container", "image": "x", "ports": [{"name": "http1", "containerPort": 8080}]}]}
    problems = knative_problems(spec)
    assert any("securityContext" in p for p in problems) and any("Probe" in p for p in problems), problems
