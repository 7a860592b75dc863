"""`make deploy-smoke`: the rendered manifests started the way a cluster starts them, on this machine.

For each layout -- the chart's separate pods, in-process container and the whole stack
(collocated pod, this repository's Redis chart, the stream consumer, an A/A experiment's second
predictor), and the Kustomize overlays dev and prod -- the documents `make render` wrote are
turned into pods: each container runs under bubblewrap as its uid with its rendered command,
args and environment, a read-only root and only the pod's volumes writable, the model placed
at /mnt/models from the champion's MLflow artifacts as KServe's storage initializer would;
probes are polled with their rendered timings; then V2 inference goes through the transformer's
declared port (REST), its gRPC port and the InferenceService's Service. On the stack, a real
Prometheus scrapes what the rendered ServiceMonitors select and evaluates the rendered rules:
no alert while healthy, RecommenderRedisDown once Redis is stopped, RecommenderHighFallbackRate
once the predictor is killed, and every Grafana dashboard query returns data.

    python scripts/deploy_smoke.py [--rendered build/rendered] [--out build/smoke] [--layouts stack,separate,...]

Needs root (network namespaces), bwrap, setpriv, ip, prometheus, redis-server, curl
(scripts/install-tools.sh installs what is missing). Writes build/smoke/report.json; exit 1 on
any failed check, 2 when the machine cannot run it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

import deploytool  # noqa: E402
from smoke.monitor import Prometheus, scrape_configs  # noqa: E402
from smoke.runner import Layout, RunningPod  # noqa: E402
from smoke.workloads import Cluster, Image, PodError, containers_of, hosts_file, project_image  # noqa: E402

LAYOUTS = {  # name -> rendered file (under --rendered), as `make render` writes them
    "stack": "helm/recommender/stack.yaml",
    "separate": "helm/recommender/separate.yaml",
    "inprocess": "helm/recommender/inprocess.yaml",
    "dev": "manifests/dev.yaml",
    "prod": "manifests/prod.yaml",
}
MONITORED = ("stack",)  # the layout with Redis, the consumer and an experiment: every panel has data
PROJECT_IMAGES = ("ghcr.io/example/movielens-recommender", "registry.example.com/recsys/recommender")
REDIS_PASSWORD = uuid.uuid4().hex
CONTROL_USER: list[int] = []  # a known user of the layout's own predictor, for the recovery checks
NEEDED = ("bwrap", "setpriv", "ip", "prometheus", "redis-server", "curl")


class SmokeFailure(AssertionError):
    pass


@dataclass
class Report:
    layout: str
    checks: list[dict[str, Any]] = field(default_factory=list)

    def check(self, what: str, ok: bool, detail: str = "") -> bool:
        self.checks.append({"check": what, "ok": bool(ok), "detail": detail})
        print(f"  [{self.layout}] {'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail else ''}", flush=True)
        return ok

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks)


# ---------------------------------------------------------------- the model registry and its store
@dataclass
class Models:
    tracking_uri: str
    champion: Path  # the versions' artifact directories (their registered source)
    challenger: Path
    users: list[int]
    items: list[int]

    def store(self, uri: str) -> Path:
        """The object store KServe's storage initializer downloads from (offline: the registry's
        own artifact directories; a challenger's URI names it)."""
        return self.challenger if "challenger" in uri else self.champion


def prepare_models(work: Path) -> Models:
    """A small model trained on synthetic GroupLens data, registered in a fresh MLflow store as
    version 1 (@challenger) and version 2 (@champion), as `make train` registers them."""
    import pandas as pd
    from mlflow import MlflowClient

    from recsys.artifacts.registry import log_and_register, model_version
    from recsys.config import Settings
    from recsys.data.movielens import load_movielens
    from recsys.data.synthetic import write_synthetic
    from recsys.training.run import train_bundle

    mlflow_dir = work / "mlflow"
    mlflow_dir.mkdir(parents=True)
    uri = f"sqlite:///{mlflow_dir / 'mlflow.db'}"
    settings = Settings(runs_dir=work / "runs", mlflow_tracking_uri=uri, embedding_dim=32, history_len=20,
                        tt_epochs=2, top_k_candidates=100, faiss_n_lists=8, cooc_candidates=50, rank_candidates=120,
                        lgbm_n_estimators=40, lgbm_min_data_in_leaf=20, torch_threads=2)
    data = load_movielens(write_synthetic(work / "data", n_users=300, n_items=400, seed=0))
    bundle, report = train_bundle(data, work / "bundle", settings, baselines=False, progress=False)
    for _ in range(2):
        log_and_register(bundle, report, settings)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias(settings.registered_model_name, "challenger", "1")
    client.set_registered_model_alias(settings.registered_model_name, "champion", "2")
    champion, challenger = (model_version(a, settings) for a in ("champion", "challenger"))
    users = pd.read_parquet(bundle / "users.parquet")["user_id"].astype(int).tolist()
    items = pd.read_parquet(bundle / "items.parquet")["item_id"].astype(int).tolist()
    local = [Path(mv.source.removeprefix("file://")) for mv in (champion, challenger)]
    return Models(uri, local[0], local[1], users, items)


def image_root(work: Path) -> Path:
    """/app of the image: the files the Docker build context holds (tracked and new files,
    without what .dockerignore drops), copied so the pods never see this checkout's local state."""
    out = work / "image" / "app"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    ignored = [p.strip().rstrip("/") for p in (REPO / ".dockerignore").read_text().splitlines()
               if p.strip() and not p.startswith("#")]
    for rel in files:
        if any(rel == p or rel.startswith(p + "/") or Path(rel).match(p) for p in ignored):
            continue
        src = REPO / rel
        if src.is_file():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out / rel)
    return out


# ---------------------------------------------------------------- V2 clients
def v2(user_ids: list[int], k: int = 5, use_cache: bool = False) -> dict:
    return {"id": uuid.uuid4().hex, "inputs": [
        {"name": "user_id", "datatype": "INT64", "shape": [len(user_ids)], "data": user_ids},
        {"name": "k", "datatype": "INT64", "shape": [1], "data": [k]},
        {"name": "use_cache", "datatype": "BOOL", "shape": [1], "data": [use_cache]}]}


def event(user: int, item: int, answer: dict | None = None) -> dict:
    """A click on ``item``; with ``answer`` (a recommend response) it names the request and the
    experiment arm it reacts to, as a client does."""
    body = {"inputs": [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [user]},
                       {"name": "item_id", "datatype": "INT64", "shape": [1], "data": [item]},
                       {"name": "event_type", "datatype": "BYTES", "shape": [1], "data": ["click"]},
                       {"name": "timestamp", "datatype": "INT64", "shape": [1], "data": [int(time.time())]}]}
    params = (answer or {}).get("parameters", {})
    for name in ("request_id", "variant"):
        if params.get(name):
            body["inputs"].append({"name": name, "datatype": "BYTES", "shape": [1], "data": [params[name]]})
    return body


def post(url: str, body: dict, timeout: float = 10.0) -> tuple[int, dict]:
    import httpx

    r = httpx.post(url, json=body, timeout=timeout)
    return r.status_code, (r.json() if r.headers.get("content-type", "").startswith("application/json") else {})


def outputs(resp: dict) -> dict[str, list]:
    return {o["name"]: o["data"] for o in resp.get("outputs", [])}


def grpc_items(addr: str, model: str, user: int, k: int) -> list[int]:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
    from kserve.protocol.infer_type import InferResponse

    tensor = pb.ModelInferRequest.InferInputTensor
    req = pb.ModelInferRequest(model_name=model, id="smoke", inputs=[
        tensor(name="user_id", datatype="INT64", shape=[1], contents=pb.InferTensorContents(int64_contents=[user])),
        tensor(name="k", datatype="INT64", shape=[1], contents=pb.InferTensorContents(int64_contents=[k])),
        tensor(name="use_cache", datatype="BOOL", shape=[1], contents=pb.InferTensorContents(bool_contents=[False]))])
    with grpc.insecure_channel(addr) as ch:
        resp = GRPCInferenceServiceStub(ch).ModelInfer(req, timeout=10)
    return [int(x) for x in next(o.data for o in InferResponse.from_grpc(resp).outputs if o.name == "item_id")]


# ---------------------------------------------------------------- a layout
def arg(argv: list[str], name: str) -> str | None:
    return next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), None)


def entry(layout: Layout) -> tuple[RunningPod, Any]:
    """The pod and container clients reach: the transformer's (own pod, or the collocated /
    in-process one), i.e. the container of the InferenceService that declares the port."""
    isvc = [rp for rp in layout.pods if rp.pod.kind.startswith("InferenceService")
            and "recommender.example.com/experiment-arm" not in json.dumps(rp.pod.labels)]
    rp = next((p for p in isvc if p.pod.labels.get("component") == "transformer"), None) or isvc[0]
    return rp, next(k for k in rp.kubelets if k.c.ports)


def provide_externals(layout: Layout, models: Models, work: Path) -> None:
    """What the manifests name but do not run: an external Redis, the MLflow server."""
    docs = layout.documents
    work.mkdir(parents=True, exist_ok=True)
    names = {n for s in layout.services for n in s.names()}
    redis_hosts, mlflow_hosts = set(), set()
    for d in docs:
        for c in _containers(d):
            for e in c.get("env", []):
                value = str(e.get("value", ""))
                if e["name"] == "REDIS_URL":
                    host = value.rsplit("@", 1)[-1].split(":")[0]
                    redis_hosts.add(_config_value(docs, host))
                if e["name"] == "MLFLOW_TRACKING_URI":
                    mlflow_hosts.add(value.split("//", 1)[1].split(":")[0])
    for host in sorted(redis_hosts - names):
        log = work / f"redis-{host}.log"
        layout.external(host, 6379, lambda addr, port, log=log: subprocess.Popen(
            ["redis-server", "--bind", addr, "--port", str(port), "--requirepass", REDIS_PASSWORD, "--save", "",
             "--appendonly", "no", "--dir", str(work)], stdout=log.open("wb"), stderr=subprocess.STDOUT))
    for host in sorted(mlflow_hosts - names):
        layout.external(host, 5000, lambda addr, port, host=host: subprocess.Popen(
            # --allowed-hosts: MLflow 3 refuses Host headers other than localhost / private IPs (DNS
            # rebinding protection); an in-cluster server must allow its Service name (docs/deploy.md).
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", models.tracking_uri, "--host", addr,
             "--port", str(port), "--workers", "1", "--allowed-hosts", f"{host},{host}:{port},{addr},{addr}:{port}"],
            stdout=(work / "mlflow-server.log").open("wb"), stderr=subprocess.STDOUT))


def _containers(doc: dict) -> list[dict]:
    spec = doc.get("spec") or {}
    if doc["kind"] == "InferenceService":
        return [c for comp in ("predictor", "transformer") if comp in spec for c in spec[comp]["containers"]]
    if doc["kind"] in ("Deployment", "StatefulSet"):
        return spec["template"]["spec"]["containers"]
    return []


def _config_value(docs: list[dict], text: str) -> str:
    """$(REDIS_HOST) in a URL -> its value from the rendered ConfigMaps."""
    if text.startswith("$("):
        key = text[2:-1]
        for d in docs:
            if d["kind"] == "ConfigMap" and key in (d.get("data") or {}):
                return d["data"][key]
    return text


def cluster_for(name: str, documents: list[dict], models: Models, work: Path, app: Path) -> Cluster:
    namespace = next((d["metadata"]["namespace"] for d in documents if d["metadata"].get("namespace")),
                     deploytool.NAMESPACE)
    project = project_image(app, REPO / "Dockerfile", Path(sys.prefix))
    images = {prefix: project for prefix in PROJECT_IMAGES}
    images["docker.io/library/redis"] = Image([], {"PATH": "/usr/local/bin:/usr/bin:/bin"}, "/data", 0, 0)
    images["curlimages/curl"] = Image([], {"PATH": "/usr/bin:/bin"}, "/", 100, 101)
    cluster = Cluster(work / name, namespace, images, storage=models.store)
    for d in documents:
        if d["kind"] == "ConfigMap":
            cluster.config_maps[d["metadata"]["name"]] = {k: str(v) for k, v in (d.get("data") or {}).items()}
        if d["kind"] == "Secret":
            import base64

            data = {k: base64.b64decode(v).decode() for k, v in (d.get("data") or {}).items()}
            cluster.secrets[d["metadata"]["name"]] = {**data, **(d.get("stringData") or {})}
    # The Secrets an operator creates before installing (docs/deploy.md), where not rendered.
    cluster.secrets.setdefault("recommender-redis", {"redis-password": REDIS_PASSWORD})
    cluster.secrets["recommender-redis"]["redis-password"] = REDIS_PASSWORD
    cluster.secrets.setdefault("recommender-s3", {"AWS_ACCESS_KEY_ID": "smoke", "AWS_SECRET_ACCESS_KEY": "smoke"})
    return cluster


def check_probes(layout: Layout, report: Report) -> None:
    for rp in layout.pods:
        for k in rp.kubelets:
            c = k.c
            kinds = ", ".join(sorted(c.probes)) or "no probes"
            report.check(f"{rp.pod.name}/{c.name} uid {c.uid} read-only root {c.read_only_root}: {kinds}",
                         c.ready and c.restarts == 0, "; ".join(e.split("s ", 1)[-1] for e in c.events[-3:]))
        for s in rp.pod.skipped:
            report.check(f"{rp.pod.name}: {s}", True, "not started here")


def check_serving(layout: Layout, models: Models, report: Report) -> None:
    rp, kb = entry(layout)
    model = arg(kb.c.argv, "model_name") or "recommender"
    port = next(iter(kb.c.ports.values()))
    base = f"http://{rp.ip}:{port}/v2/models"
    known, unknown = models.users[0], 10**9
    status, body = post(f"{base}/{model}/infer", v2([known]))
    got = outputs(body).get("item_id", [])
    params = body.get("parameters", {})
    report.check(f"REST V2 infer on the declared port {port} ({rp.pod.name})", status == 200 and len(got) == 5
                 and not params.get("fallback"), f"HTTP {status}, items {got}, fallback {params.get('fallback')}")
    status, body = post(f"{base}/{model}/infer", v2([unknown]))
    report.check("REST V2 infer, unknown user -> popularity", status == 200 and "cold_start" in str(
        body.get("parameters", {}).get("fallback")), f"HTTP {status}, fallback {body.get('parameters', {})}")
    isvc = rp.pod.labels["serving.kserve.io/inferenceservice"]
    svc = layout.names[f"{isvc}.{layout.cluster.namespace}"]
    status, body = post(f"http://{svc}/v2/models/{model}/infer", v2([known]))
    report.check(f"REST V2 infer through the Service {isvc}.{layout.cluster.namespace}:80", status == 200,
                 f"HTTP {status}")
    grpc_port = arg(kb.c.argv, "grpc_port")
    try:
        items = grpc_items(f"{rp.ip}:{grpc_port}", model, known, 5)
        report.check(f"gRPC V2 infer on the pod's port {grpc_port} (not declared: Knative serves one port)",
                     items == got, f"items {items}")
    except Exception as exc:  # noqa: BLE001 - reported as a failed check
        report.check(f"gRPC V2 infer on the pod's port {grpc_port}", False, repr(exc)[:300])
    status, body = post(f"{base}/events/infer", event(known, models.items[0]))
    report.check("feedback event acknowledged", status == 200 and outputs(body).get("accepted") == [True],
                 f"HTTP {status} {outputs(body)}")


def run_test_pods(layout: Layout, report: Report) -> None:
    """`helm test`: the chart's test pod, run to completion (restartPolicy Never)."""
    from smoke.kubelet import sandbox_argv
    from smoke.workloads import Pod

    for d in layout.documents:
        if d["kind"] != "Pod" or d["metadata"].get("annotations", {}).get("helm.sh/hook") != "test":
            continue
        net = layout.net.add_pod()
        pod = Pod(d["metadata"]["name"], "Pod", d["metadata"].get("labels", {}), d["spec"])
        pod_dir = layout.cluster.root / "pods" / pod.name
        pod_dir.mkdir(parents=True, exist_ok=True)
        hosts = hosts_file(pod_dir / "hosts", pod.name, net.ip, layout.names)
        for c in containers_of(pod, pod_dir, hosts, layout.cluster):
            proc = subprocess.run(sandbox_argv(c, net.netns, pod.name), capture_output=True, text=True, timeout=90)
            report.check(f"helm test pod {pod.name}: {' '.join(c.argv[-1:])}", proc.returncode == 0,
                         (proc.stdout + proc.stderr).strip()[-300:])


def check_consumer(layout: Layout, report: Report) -> None:
    claims = layout.cluster.root / "pvc"
    deadline = time.monotonic() + 30
    files: list[Path] = []
    while time.monotonic() < deadline and not files:
        files = list(claims.rglob("*.parquet"))
        time.sleep(1)
    report.check("the consumer archived the event to the archive claim (date-partitioned parquet)", bool(files),
                 ", ".join(str(f.relative_to(claims)) for f in files[:3]))


# ---------------------------------------------------------------- monitoring
class Load(threading.Thread):
    """Steady traffic through the transformer: known users (cache on and off) and events."""

    def __init__(self, url: str, models: Models, rate: float = 20.0):
        super().__init__(daemon=True, name="load")
        self.url, self.models, self.period = url, models, 1.0 / rate
        self.stopping = threading.Event()
        self.statuses: dict[int, int] = {}
        self.rng = random.Random(0)

    def run(self) -> None:
        import httpx

        with httpx.Client(timeout=5.0) as client:
            n = 0
            while not self.stopping.is_set():
                n += 1
                user = self.rng.choice(self.models.users)
                try:
                    r = client.post(f"{self.url}/recommender/infer", json=v2([user], use_cache=n % 3 == 0))
                    if n % 5 == 0 and r.status_code == 200:  # a click on the answer's first item
                        answer = r.json()
                        self.count(r.status_code)
                        r = client.post(f"{self.url}/events/infer", json=event(user, outputs(answer)["item_id"][0],
                                                                                 answer))
                    code = r.status_code
                except httpx.HTTPError:
                    code = 0
                self.count(code)
                time.sleep(self.period)

    def count(self, code: int) -> None:
        self.statuses[code] = self.statuses.get(code, 0) + 1

    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500 or code == 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_monitoring(layout: Layout, rules: Path, models: Models, work: Path, report: Report) -> None:
    rp, kb = entry(layout)
    CONTROL_USER[:] = [control_user(layout, models)]
    skipped: list[str] = []
    prom = Prometheus(work / "prometheus", scrape_configs(layout, skipped), rules, free_port())
    if skipped:
        report.check("scrape targets in containers not started here, left out", True, ", ".join(skipped))
    load = Load(f"http://{rp.ip}:{next(iter(kb.c.ports.values()))}/v2/models", models)
    load.start()
    try:
        _monitoring_phases(layout, prom, load, report)
    finally:
        load.stopping.set()
        load.join(10)
        prom.stop()
    report.check("no 5xx or dropped request in any phase", load.server_errors() == 0, f"statuses {load.statuses}")


def _monitoring_phases(layout: Layout, prom: Prometheus, load: Load, report: Report) -> None:
    deadline = time.monotonic() + 40
    targets: list[dict] = []
    while time.monotonic() < deadline:
        targets = prom.targets()
        if targets and all(t["health"] == "up" for t in targets):
            break
        time.sleep(1)
    report.check(f"Prometheus scrapes every ServiceMonitor target ({len(targets)})",
                 bool(targets) and all(t["health"] == "up" for t in targets),
                 ", ".join(f"{t['labels'].get('job')}@{t['scrapeUrl'].split('/')[2]}={t['health']}" for t in targets))
    rules = prom.rules()
    report.check(f"the rendered rules load ({len(rules)})", bool(rules) and all(r["health"] == "ok" for r in rules),
                 ", ".join(r["name"] for r in rules))
    time.sleep(40)  # many evaluation intervals (1 s) past every rule's `for` (10 s); 500+ users for the skew
    active = [f"{a['labels']['alertname']} ({a['state']})" for a in prom.alerts()]
    report.check("healthy system: no alert pending or firing after 40 s of traffic", not active, ", ".join(active))
    empty = [e for e in deploytool.dashboard_exprs() if not prom.query(e.replace("$__rate_interval", "30s"))]
    report.check(f"every Grafana dashboard query returns data ({len(deploytool.dashboard_exprs())})", not empty,
                 "; ".join(empty))
    redis = next(p for p in layout.pods if p.pod.labels.get("app.kubernetes.io/name") == "redis")
    _outage(layout, prom, report, redis, "redis", "Redis stopped", "RecommenderRedisDown", "redis_down")
    rp, _ = entry(layout)
    _outage(layout, prom, report, rp, "kserve-container", "predictor killed", "RecommenderHighFallbackRate",
            "predictor_down")


def _outage(layout: Layout, prom: Prometheus, report: Report, rp: RunningPod, container: str, what: str,
            alert: str, reason: str) -> None:
    """Kill ``container`` and hold its restart (the kubelet's crash back-off) until ``alert``
    fires with fallbacks of ``reason``, then let it restart and wait for ranked answers again."""
    settled = _wait(lambda: not prom.alerts(), 90)
    active = ", ".join(a["labels"]["alertname"] for a in prom.alerts())
    report.check(f"before '{what}': no alert active", settled is not None,
                 f"{settled:.0f} s" if settled is not None else active)
    kb = rp.container(container)
    restarts = kb.c.restarts
    kb.c.hold.set()
    kb.kill()
    _wait(lambda: kb.c.restarts > restarts, 10)
    fired = prom.wait_alert(alert, "firing", 120)
    report.check(f"{what}: {alert} fires", fired is not None, f"after {fired:.0f} s" if fired is not None else
                 "not within 120 s: " + ", ".join(f"{a['labels']['alertname']}={a['state']}" for a in prom.alerts()))
    by_reason = {r["metric"].get("reason"): float(r["value"][1]) for r in prom.query(
        'sum by (reason) (rate(recommender_fallbacks_total{server="transformer"}[30s]))')}
    report.check(f"{what}: the answers are flagged {reason}", by_reason.get(reason, 0) > 0,
                 ", ".join(f"{k}={v:.2f}/s" for k, v in by_reason.items() if v))
    _, entry_kb = entry(layout)
    report.check(f"{what}: the transformer stays ready and alive", entry_kb.c.ready and entry_kb.c.restarts == 0,
                 f"ready={entry_kb.c.ready} restarts={entry_kb.c.restarts}")
    kb.c.hold.clear()
    back = _wait(lambda: kb.c.ready and not _fallback(layout), 240)
    report.check(f"{what}: restarted (back-off 10 s), ranked answers again", back is not None,
                 f"{back:.0f} s after the restart was released" if back is not None else layout.describe(tail=10))
    kb.c.restarts = restarts  # the outage's restart was ours


def _wait(condition: Any, timeout: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if condition():
                return time.monotonic() - t0
        except Exception:  # noqa: BLE001, S110 - not yet
            pass
        time.sleep(1)
    return None


def _fallback(layout: Layout) -> str | None:
    """The fallback flag of the answer to a known user of the control arm (None: ranked)."""
    rp, kb = entry(layout)
    status, body = post(f"http://{rp.ip}:{next(iter(kb.c.ports.values()))}/v2/models/recommender/infer",
                        v2([CONTROL_USER[0]]))
    return body.get("parameters", {}).get("fallback") if status == 200 else f"HTTP {status}"


def control_user(layout: Layout, models: Models) -> int:
    """A known user the layout's own predictor answers (the control arm when an experiment runs)."""
    rp, kb = entry(layout)
    url = f"http://{rp.ip}:{next(iter(kb.c.ports.values()))}/v2/models/recommender/infer"
    for user in models.users:
        _, body = post(url, v2([user]))
        if body.get("parameters", {}).get("variant") in (None, "control"):
            return user
    raise RuntimeError("no user of the control arm")


# ---------------------------------------------------------------- main
def run_layout(name: str, rendered: Path, models: Models, work: Path, app: Path, monitoring: bool) -> Report:
    report = Report(name)
    documents = deploytool.docs((rendered / LAYOUTS[name]).read_text())
    layout = Layout(name, documents, cluster_for(name, documents, models, work, app))
    print(f"== {name}: {rendered / LAYOUTS[name]}", flush=True)
    try:
        provide_externals(layout, models, work / name)
        layout.up()
        took = layout.wait_ready(300)
        report.check(f"every container started and ready ({sum(len(p.kubelets) for p in layout.pods)} in "
                     f"{len(layout.pods)} pods)", True, f"{took:.0f} s")
        check_probes(layout, report)
        check_serving(layout, models, report)
        if any(p.pod.kind == "Deployment" for p in layout.pods):
            check_consumer(layout, report)
        run_test_pods(layout, report)
        if monitoring and name in MONITORED:
            rules = rendered / "rules" / f"recommender-{Path(LAYOUTS[name]).stem}.rules.yaml"
            check_monitoring(layout, rules, models, work / name, report)
    except (PodError, OSError, RuntimeError, KeyError, StopIteration) as exc:
        import traceback

        where = traceback.format_exc().strip().splitlines()[-3:-1]
        report.check("layout ran", False, f"{type(exc).__name__}: {exc} {where}"[-3000:])
        print(layout.describe(tail=15), flush=True)
    finally:
        layout.down()
    return report


def preflight() -> str | None:
    if os.geteuid() != 0:
        return "needs root: pods get network namespaces (ip netns) and switch to their uid"
    missing = [t for t in NEEDED if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (scripts/install-tools.sh installs them)"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rendered", type=Path, default=REPO / "build" / "rendered", help="what `make render` wrote")
    p.add_argument("--out", type=Path, default=REPO / "build" / "smoke", help="work directory and report.json")
    p.add_argument("--layouts", default=",".join(LAYOUTS), help=f"comma-separated, of {', '.join(LAYOUTS)}")
    p.add_argument("--no-monitoring", action="store_true", help="skip the Prometheus phase of the stack")
    args = p.parse_args(argv)
    args.rendered, args.work = args.rendered.resolve(), args.out.resolve()  # Prometheus resolves rules by its dir
    sys.argv = sys.argv[:1]  # `import kserve` parses the command line itself (its model-server flags)
    problem = preflight()
    if problem:
        print(f"deploy-smoke: {problem}", file=sys.stderr)
        return 2
    layouts = [x for x in args.layouts.split(",") if x]
    unknown = [x for x in layouts if x not in LAYOUTS]
    if unknown:
        print(f"deploy-smoke: unknown layouts {unknown}; choose from {list(LAYOUTS)}", file=sys.stderr)
        return 2
    if not all((args.rendered / LAYOUTS[x]).is_file() for x in layouts):
        print(f"deploy-smoke: rendering to {args.rendered} (make render)", flush=True)
        deploytool.render(args.rendered)
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    t0 = time.monotonic()
    print("deploy-smoke: training a small model and registering it (MLflow) ...", flush=True)
    models = prepare_models(args.work)
    app = image_root(args.work)
    reports = [run_layout(x, args.rendered, models, args.work, app, not args.no_monitoring) for x in layouts]
    out = {"seconds": round(time.monotonic() - t0, 1), "layouts": {r.layout: r.checks for r in reports}}
    (args.work / "report.json").write_text(json.dumps(out, indent=2))
    failed = [f"{r.layout}: {c['check']}" for r in reports for c in r.checks if not c["ok"]]
    print(f"deploy-smoke: {len(reports)} layouts, {sum(len(r.checks) for r in reports)} checks, "
          f"{len(failed)} failed, {out['seconds']:.0f} s; report {args.work / 'report.json'}")
    for f in failed:
        print(f"  FAILED {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
