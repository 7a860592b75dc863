"""A real Prometheus (Debian's `prometheus`) on what the rendered ServiceMonitors select.

The scrape configuration is derived the way the Prometheus Operator derives it: a
ServiceMonitor selects Services by label in its namespaces; each endpoint names a Service port;
the targets are the selected Services' endpoints (pods matching the Service's selector) at the
port's targetPort; the ``job`` label is the Service's name; relabelings from pod labels apply.
The rules are the rendered PrometheusRule groups (what `make render` wrote for the set).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from smoke.runner import Layout, RunningPod


def _matches(labels: dict[str, str], selector: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _target(rp: RunningPod, target: int | str) -> tuple[int, str | None]:
    """(port, container) of a Service targetPort on the pod (its spec, as the Endpoints see it)."""
    for c in rp.pod.spec["containers"]:
        for p in c.get("ports", []):
            if p.get("name") == target or str(p["containerPort"]) == str(target):
                return int(p["containerPort"]), c["name"]
    return int(target), None


def _labels(layout: Layout, svc: dict, rp: RunningPod, relabelings: list[dict]) -> dict[str, str]:
    """Target labels as the operator sets them: job = the Service, relabelings from pod labels."""
    labels = {"job": svc["metadata"]["name"], "namespace": layout.cluster.namespace,
              "service": svc["metadata"]["name"], "pod": rp.pod.name}
    for rel in relabelings:
        src = rel.get("sourceLabels", [])
        if len(src) == 1 and src[0].startswith("__meta_kubernetes_pod_label_"):
            value = rp.pod.labels.get(src[0].removeprefix("__meta_kubernetes_pod_label_"))
            if value is not None:
                labels[rel["targetLabel"]] = value
    return labels


def _endpoint_targets(layout: Layout, selector: dict, ep: dict, skipped: list[str]) -> list[dict]:
    targets = []
    for svc in (d for d in layout.documents if d["kind"] == "Service"):
        port = next((p for p in svc["spec"]["ports"] if p.get("name") == ep["port"]), None)
        if port is None or not _matches(svc["metadata"].get("labels", {}), selector):
            continue
        for rp in (p for p in layout.pods if _matches(p.pod.labels, svc["spec"].get("selector", {}))):
            number, container = _target(rp, port.get("targetPort", port["port"]))
            if container is not None and not any(k.c.name == container for k in rp.kubelets):
                skipped.append(f"{svc['metadata']['name']} -> {rp.pod.name}/{container}:{number}")
                continue
            targets.append({"targets": [f"{rp.ip}:{number}"],
                            "labels": _labels(layout, svc, rp, ep.get("relabelings", []))})
    return targets


def scrape_configs(layout: Layout, skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """Prometheus scrape_configs for the layout's ServiceMonitors (static targets: the pods).
    Targets in containers that do not run here are left out and named in ``skipped``."""
    out, skipped = [], skipped if skipped is not None else []
    for sm in (d for d in layout.documents if d["kind"] == "ServiceMonitor"):
        selector = sm["spec"]["selector"].get("matchLabels", {})
        for i, ep in enumerate(sm["spec"]["endpoints"]):
            targets = _endpoint_targets(layout, selector, ep, skipped)
            if targets:
                out.append({"job_name": f"serviceMonitor/{layout.cluster.namespace}/{sm['metadata']['name']}/{i}",
                            "metrics_path": ep.get("path", "/metrics"), "scrape_interval": ep.get("interval", "30s"),
                            "scrape_timeout": ep.get("scrapeTimeout", "10s"), "static_configs": targets})
    return out


class Prometheus:
    def __init__(self, work: Path, configs: list[dict], rules: Path, port: int, evaluation_interval: str = "1s"):
        work.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{port}"
        config = {"global": {"evaluation_interval": evaluation_interval}, "rule_files": [str(rules)],
                  "scrape_configs": configs}
        (work / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.log = work / "prometheus.log"
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.get("/-/ready")
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"prometheus did not start: {self.log.read_text()[-2000:]}")

    def get(self, path: str, **params: str) -> Any:
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
            body = resp.read()
        return json.loads(body) if body.startswith(b"{") else body

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["data"]["result"]

    def alerts(self) -> list[dict]:
        return self.get("/api/v1/alerts")["data"]["alerts"]

    def targets(self) -> list[dict]:
        return self.get("/api/v1/targets")["data"]["activeTargets"]

    def rules(self) -> list[dict]:
        return [r for g in self.get("/api/v1/rules")["data"]["groups"] for r in g["rules"]]

    def wait_alert(self, name: str, state: str, timeout: float) -> float | None:
        """Seconds until alert ``name`` is in ``state`` (firing / pending), None on timeout."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if any(a["labels"]["alertname"] == name and a["state"] == state for a in self.alerts()):
                return time.monotonic() - t0
            time.sleep(1)
        return None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
