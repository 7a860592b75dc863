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


def test_gate_refuses_another_protocol():
    champ = SimpleNamespace(version="3", tags={"protocol": "loo", "ndcg_at_10": "0.1"})
    ok, reason, _ = gate(0.5, "user-temporal", champ)
    assert not ok and "protocol" in reason
    assert gate(0.1, "loo", champ)[0] and not gate(0.09, "loo", champ)[0]
    assert gate(0.0, "loo", None)[0]


@pytest.mark.integration
def test_register_gate_aliases_and_load_by_alias(trained, local_state, tmp_path):
    bundle, report = trained
    first = log_and_register(bundle, report)
    assert first.promoted and "first version" in first.reason

    worse = log_and_register(bundle, report, min_delta=1.0)  # needs +1.0 ndcg: cannot pass
    assert not worse.promoted and "not promoted" in worse.reason
    assert str(model_version("champion").version) == first.version
    assert str(model_version("challenger").version) == worse.version

    equal = log_and_register(bundle, report)  # same ndcg@10: >= passes
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
