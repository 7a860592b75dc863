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
