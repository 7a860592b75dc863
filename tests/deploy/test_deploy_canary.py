"""KServe canary: rendered canaryTrafficPercent and storageUri for each rollout step, the steps'
helm arguments from a release's values, and the refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import deploytool
from deploytool import REPO, by_kind

sys.path.insert(0, str(REPO / "scripts"))
from rollout import RolloutError, helm_sets  # noqa: E402

STABLE, NEW = "s3://mlflow/1/aaa/artifacts/bundle", "s3://mlflow/1/bbb/artifacts/bundle"


def _render(staged, sets: list[str]) -> dict:
    layout = REPO / "helm/recommender/ci/separate-values.yaml"
    cmd = [deploytool.tool("helm"), "template", "r", str(staged), "-f", str(layout)]
    for s in sets:
        cmd += ["--set", s]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return by_kind(deploytool.docs(out.stdout), "InferenceService")[0]


def _uris(isvc: dict) -> set[str]:
    spec = isvc["spec"]
    return {e["value"] for part in ("predictor", "transformer") for c in spec[part]["containers"]
            for e in c.get("env", []) if e["name"] == "STORAGE_URI"}


def test_a_rollout_renders_canary_then_promote_or_rollback(staged_chart):
    values = {"model": {"storageUri": STABLE}, "canary": {"storageUri": "", "trafficPercent": 10}}
    stable = _render(staged_chart, [f"model.storageUri={STABLE}"])
    assert "canaryTrafficPercent" not in stable["spec"]["predictor"] and _uris(stable) == {STABLE}

    start = helm_sets("canary", values, NEW, 20)
    canary = _render(staged_chart, [f"model.storageUri={STABLE}", *start])
    for part in ("predictor", "transformer"):
        assert canary["spec"][part]["canaryTrafficPercent"] == 20
    assert _uris(canary) == {NEW}  # the new revision loads the new model; KServe keeps 80% on the last one

    running = {"model": {"storageUri": STABLE}, "canary": {"storageUri": NEW, "trafficPercent": 20}}
    promoted = _render(staged_chart, [f"model.storageUri={STABLE}", *start, *helm_sets("promote", running)])
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"] and _uris(promoted) == {NEW}
    rolled_back = _render(staged_chart, [f"model.storageUri={STABLE}", *start, *helm_sets("rollback", running)])
    assert "canaryTrafficPercent" not in rolled_back["spec"]["predictor"] and _uris(rolled_back) == {STABLE}


def test_steps_that_make_no_sense_are_refused():
    values = {"model": {"storageUri": STABLE}, "canary": {"storageUri": ""}}
    with pytest.raises(RolloutError, match="no canary is running"):
        helm_sets("promote", values)
    with pytest.raises(RolloutError, match="already the stable"):
        helm_sets("canary", values, STABLE)
    with pytest.raises(RolloutError, match="1..99"):
        helm_sets("canary", values, NEW, 100)


def test_a_canary_needs_serverless(staged_chart):
    cmd = [deploytool.tool("helm"), "template", "r", str(staged_chart), "--set", f"model.storageUri={STABLE}",
           "--set", f"canary.storageUri={NEW}", "--set", "inferenceService.deploymentMode=RawDeployment",
           "--set", "inferenceService.autoscaling.metric=cpu"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode != 0 and "need deploymentMode Serverless" in out.stderr


def test_make_promote_without_a_cluster_says_what_failed(tmp_path):
    values = tmp_path / "v.json"
    values.write_text(json.dumps({"model": {"storageUri": STABLE}, "canary": {"storageUri": NEW}}))
    out = subprocess.run([sys.executable, "scripts/rollout.py", "promote", "--values-json", str(values), "--dry-run"],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and f"model.storageUri={NEW}" in out.stdout and "--reuse-values" in out.stdout
