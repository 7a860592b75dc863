"""One layout of rendered manifests brought up on this machine and torn down again.

:class:`Layout` turns the documents into pods (workloads), gives each a network namespace and
its /etc/hosts, runs init containers to completion, starts every container under its own
kubelet thread (probes, restarts), and forwards every Service address to its ready endpoints.
Dependencies outside the manifests (an external Redis, the MLflow server) are started by the
caller through :meth:`Layout.external` before :meth:`Layout.up`.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from smoke.kubelet import Kubelet
from smoke.network import Network
from smoke.workloads import Cluster, Pod, PodError, containers_of, hosts_file, pods_of, services_of

STORAGE_INITIALIZER = "kserve/storage-initializer"


@dataclass
class RunningPod:
    pod: Pod
    ip: str
    netns: str
    dir: Path
    kubelets: list[Kubelet] = field(default_factory=list)

    def ready(self) -> bool:
        return bool(self.kubelets) and all(k.c.ready for k in self.kubelets)

    def container(self, name: str) -> Kubelet:
        return next(k for k in self.kubelets if k.c.name == name)


class Layout:
    def __init__(self, name: str, documents: list[dict], cluster: Cluster):
        self.name, self.documents, self.cluster = name, documents, cluster
        self.net = Network()
        self.pods: list[RunningPod] = []
        self.names: dict[str, str] = {}  # DNS name -> address (the pods' /etc/hosts)
        self.services = [s for s in services_of(documents, cluster.namespace) if not s.headless]
        self._externals: list[subprocess.Popen] = []

    # ---------------------------------------------------------------- dependencies outside the manifests
    def external(self, host: str, port: int, start: Callable[[str, int], subprocess.Popen]) -> str:
        """A dependency the manifests only name (an external Redis, MLflow): ``start(addr, port)``
        runs it on a Service address of its own, which ``host`` resolves to in every pod."""
        addr = self.net.service_ip(f"external/{host}")
        self.names[host] = addr
        self._externals.append(start(addr, port))
        return addr

    # ---------------------------------------------------------------- bring up
    def up(self) -> None:
        for svc in self.services:
            addr = self.net.service_ip(f"{svc.namespace}/{svc.name}")
            for n in svc.names():
                self.names[n] = addr
        for pod in pods_of(self.documents, self.cluster.namespace):
            net = self.net.add_pod()
            pod_dir = self.cluster.root / "pods" / pod.name
            if pod_dir.exists():
                shutil.rmtree(pod_dir)
            pod_dir.mkdir(parents=True)
            self.pods.append(RunningPod(pod, net.ip, net.netns, pod_dir))
        for rp in self.pods:
            hosts = hosts_file(rp.dir / "hosts", rp.pod.name, rp.ip, self.names)
            self._run_init(rp, hosts)
            for c in containers_of(rp.pod, rp.dir, hosts, self.cluster):
                k = Kubelet(c, rp.netns, rp.ip, rp.pod.name)
                rp.kubelets.append(k)
                k.start()
        for svc in self.services:
            for port, target in svc.ports:
                self.net.forward(f"{svc.namespace}/{svc.name}", int(port), self._endpoints(svc.selector, target))

    def _run_init(self, rp: RunningPod, hosts: Path) -> None:
        """Init containers in order, each to completion (KServe's storage initializer emulated:
        the model store copies the bundle of its storageUri into the volume it mounts)."""
        for init in rp.pod.spec.get("initContainers", []):
            if init["image"].startswith(STORAGE_INITIALIZER):
                uri, dest = init["args"][0], init["args"][1]
                mount = next(m for m in init["volumeMounts"] if m["mountPath"] == dest)
                vol = rp.dir / "volumes" / mount["name"]
                vol.mkdir(parents=True, exist_ok=True)
                shutil.copytree(self.cluster.storage(uri), vol, dirs_exist_ok=True)  # type: ignore[misc]
                continue
            raise PodError(f"{rp.pod.name}: init container {init['name']} ({init['image']}) is not emulated")

    def _endpoints(self, selector: dict[str, str], target: int | str) -> Callable[[], list[tuple[str, int]]]:
        def endpoints() -> list[tuple[str, int]]:
            out = []
            for rp in self.pods:
                if not selector or any(rp.pod.labels.get(k) != v for k, v in selector.items()) or not rp.ready():
                    continue
                out.append((rp.ip, self._target_port(rp, target)))
            return out

        return endpoints

    @staticmethod
    def _target_port(rp: RunningPod, target: int | str) -> int:
        if isinstance(target, int) or str(target).isdigit():
            return int(target)
        declared = {n: p for k in rp.kubelets for n, p in k.c.ports.items()}
        if target == "serving":  # KServe's Services: the container serving the pod's port
            return next(iter(declared.values()), 8080)
        return declared[str(target)]

    def wait_ready(self, timeout: float) -> float:
        """Seconds until every container is ready; PodError (with the logs' tails) on timeout."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if all(rp.ready() for rp in self.pods):
                return time.monotonic() - t0
            time.sleep(0.5)
        raise PodError(f"{self.name}: not ready after {timeout:.0f} s:\n" + self.describe(tail=25))

    def pod(self, component: str) -> RunningPod:
        return next(rp for rp in self.pods if rp.pod.labels.get("component") == component
                    or rp.pod.labels.get("app.kubernetes.io/component") == component)

    def describe(self, tail: int = 0) -> str:
        lines = []
        for rp in self.pods:
            for k in rp.kubelets:
                c = k.c
                lines.append(f"  {rp.pod.name}/{c.name}: ready={c.ready} restarts={c.restarts}")
                lines += [f"    {e}" for e in c.events]
                if tail and c.log.exists():
                    lines += [f"    | {x}" for x in c.log.read_text(errors="replace").splitlines()[-tail:]]
            lines += [f"  {rp.pod.name}: not started: {s}" for s in rp.pod.skipped]
        return "\n".join(lines)

    def down(self) -> None:
        for rp in self.pods:
            for k in rp.kubelets:
                k.stopping.set()
        for rp in self.pods:
            for k in rp.kubelets:
                k.stop()
        for proc in self._externals:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.net.close()
