"""A real Prometheus (Debian package) scrapes a /metrics endpoint on loopback and evaluates every
dashboard query and alert rule.

The endpoint exports the metrics of the contract (helm/recommender/metrics.txt) from its own
registry, with one observation per label value, so each query must return data: this proves the
PromQL parses, the names/labels line up and the rules load. (Scraping the live KServe servers is
to be added once predictors/ and a test bundle exist.)
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from deploytool import dashboard_exprs
from deploytool import metrics_contract as contract

pytestmark = pytest.mark.integration

LABEL_VALUES = {
    "stage": ["feature_lookup", "cache", "predictor_call", "retrieval", "ranking", "end_to_end"],
    "server": ["transformer", "predictor"],
    "model": ["recommender"],
    "kind": ["bad_request", "internal", "requests", "fallbacks"],
    "experiment": ["exp-1"],
    "variant": ["control", "treatment"],
    "event_type": ["impression", "click", "view"],
    "result": ["hit", "miss", "error"],
    "reason": ["cold_start", "redis_down", "feature_store_down", "feature_store_miss", "feature_store_behind",
               "predictor_down",
               "predictor_timeout"],
    "dependency": ["redis", "feature_store", "predictor"],
    "outcome": ["ok", "timeout", "error", "open"],
    "feature": ["user_activity", "item_popularity"],
    "version": ["3"],
    "durable": ["log", "spool"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_registry() -> tuple[CollectorRegistry, list]:
    reg = CollectorRegistry()
    metrics = []
    for name, (kind, labels) in contract().items():
        labels = sorted(labels)
        cls = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}[kind]
        base = name.removesuffix("_total") if kind == "counter" else name
        metrics.append((cls(base, f"contract metric {name}", labels, registry=reg), kind, labels))
    return reg, metrics


def bump(metrics) -> None:
    """Advance every series (counters grow so rate() is non-zero)."""
    import itertools

    for m, kind, labels in metrics:
        combos = itertools.product(*(LABEL_VALUES[lab] for lab in labels)) if labels else [()]
        for combo in combos:
            child = m.labels(*combo) if labels else m
            if kind == "counter":
                child.inc(5)
            elif kind == "histogram":
                child.observe(0.004)
                child.observe(0.03)
            else:
                child.set(1)


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, rendered):
    binary = shutil.which("prometheus")
    if not binary:
        pytest.skip("prometheus server not installed (apt-get install prometheus, done by scripts/install-tools.sh)")
    tmp_path = tmp_path_factory.mktemp("prometheus")
    reg, metrics = build_registry()
    exporter_port = free_port()
    server, thread = start_http_server(exporter_port, addr="127.0.0.1", registry=reg)
    bump(metrics)
    rules = tmp_path / "rules.yaml"
    rules.write_text((rendered["_out"] / "rules" / "recommender-default.rules.yaml").read_text())
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "recommender",
                            "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
    }
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                targets = get(f"{base}/api/v1/targets")["data"]["activeTargets"]
                if targets and targets[0]["health"] == "up":
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.3)
        else:
            pytest.fail("Prometheus never scraped the exporter")
        for _ in range(4):  # a few scrapes with growing counters, so rate() has two points
            time.sleep(1.1)
            bump(metrics)
        time.sleep(1.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.shutdown()
        server.server_close()


def query(base: str, expr: str) -> dict:
    return get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))


def test_every_dashboard_query_returns_data(prometheus):
    empty = []
    for expr in dashboard_exprs():
        result = query(prometheus, expr.replace("$__rate_interval", "1m"))
        assert result["status"] == "success", (expr, result)
        if not result["data"]["result"]:
            empty.append(expr)
    assert not empty, "queries with no data:\n" + "\n".join(empty)


def test_alert_rules_load_and_evaluate(prometheus):
    time.sleep(1.5)  # at least one rule evaluation
    groups = get(f"{prometheus}/api/v1/rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 7
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
    # The exporter reports Redis up and every series is healthy apart from the synthetic error /
    # fallback ratios; the Redis alert must therefore be inactive.
    redis = next(r for r in rules if r["name"] == "RecommenderRedisDown")
    assert redis["state"] == "inactive"
