"""Every metric the dashboard and the alert rules query exists on the servers.

helm/recommender/metrics.txt is the contract (names, types, labels). The dashboard and rules are
checked against it here; the contract is checked against the real registry of
predictors.server_metrics and recsys.online.consumer.
"""

from __future__ import annotations

import json
import re

import yaml

from deploytool import REPO, dashboard_exprs
from deploytool import metrics_contract as contract

CHART = REPO / "helm" / "recommender"
METRIC_RE = re.compile(r"\b(recommender_[a-z0-9_]+)\b")
SELECTOR_RE = re.compile(r"\b(recommender_[a-z0-9_]+)\{([^}]*)\}")
MATCHER_RE = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
BY_RE = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def sample_names(name: str, kind: str) -> set[str]:
    """Series names Prometheus sees for one metric of the contract."""
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return {name}


def rule_exprs(rendered) -> list[str]:
    groups = yaml.safe_load((rendered["_out"] / "rules" / "recommender-default.rules.yaml").read_text())
    return [r["expr"] for g in groups["groups"] for r in g["rules"]]


def check_exprs(exprs: list[str]) -> list[str]:
    c = contract()
    by_sample = {s: (n, kind, labels) for n, (kind, labels) in c.items() for s in sample_names(n, kind)}
    problems = []
    for expr in exprs:
        used = set(METRIC_RE.findall(expr))
        for name in used - set(by_sample):
            problems.append(f"unknown metric {name} in: {expr}")
        known = [by_sample[n] for n in used if n in by_sample]
        all_labels = set().union(*(lab for _, _, lab in known)) | {"le"}
        for name, matchers in SELECTOR_RE.findall(expr):
            if name in by_sample:
                allowed = by_sample[name][2] | ({"le"} if name.endswith("_bucket") else set())
                for label in MATCHER_RE.findall(matchers):
                    if label not in allowed:
                        problems.append(f"{name} has no label {label}: {expr}")
        for group in BY_RE.findall(expr):
            for label in filter(None, (s.strip() for s in group.split(","))):
                if label not in all_labels:
                    problems.append(f"aggregation by unknown label {label}: {expr}")
    return problems


def test_dashboard_queries_use_contract_metrics_and_labels():
    exprs = dashboard_exprs()
    assert exprs and not check_exprs(exprs), "\n".join(check_exprs(exprs))


def test_rule_queries_use_contract_metrics_and_labels(rendered):
    exprs = rule_exprs(rendered)
    assert exprs and not check_exprs(exprs), "\n".join(check_exprs(exprs))


def test_checker_flags_unknown_names_and_labels():
    assert check_exprs(["rate(recommender_request_total[5m])"])
    assert check_exprs(['sum(rate(recommender_fallbacks_total{cause="x"}[5m]))'])
    assert check_exprs(["sum by (stage) (rate(recommender_requests_total[5m]))"])


def test_dashboard_covers_every_contract_metric():
    used = {m for e in dashboard_exprs() for m in METRIC_RE.findall(e)}
    for name, (kind, _) in contract().items():
        assert sample_names(name, kind) & used, f"dashboard never shows {name}"


def test_dashboard_panels():
    dash = json.loads((CHART / "dashboards" / "recommender.json").read_text())
    titles = " | ".join(p["title"] for p in dash["panels"]).lower()
    for want in ("request rate", "error rate", "p50", "p95", "p99", "cache hit", "fallbacks by reason",
                 "skew", "model version"):
        assert want in titles, want
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dash["panels"])


def test_contract_matches_the_real_registries():
    import importlib

    import prometheus_client
    from prometheus_client.metrics import MetricWrapperBase

    for name, (kind, labels, module_name) in contract(with_module=True).items():
        module = importlib.import_module(module_name)
        wrappers = {obj._name + ("_total" if obj._type == "counter" else ""): (obj._type, set(obj._labelnames))
                    for obj in vars(module).values() if isinstance(obj, MetricWrapperBase)}
        assert name in wrappers, f"{name} not defined in {module_name}"
        assert wrappers[name] == (kind, labels), f"{name}: {module_name} {wrappers[name]} vs {(kind, labels)}"
    registered = {f.name + ("_total" if f.type == "counter" else "") for f in prometheus_client.REGISTRY.collect()}
    assert set(contract()) <= registered
