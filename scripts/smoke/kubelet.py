"""Containers started the way the kubelet starts them, here without a container runtime.

A container runs under bubblewrap inside its pod's network namespace: the image's filesystem
(this machine's /usr, /etc and Python, the project at /app and its venv at /opt/venv, as the
Dockerfile lays them out) read-only when ``readOnlyRootFilesystem`` is set, the pod's volumes
bound where the container mounts them (only those writable), the environment assembled like
the kubelet's (image ENV, envFrom, env with $(VAR) expansion, command and args expanded), and
the process switched to the container's uid/gid with every capability dropped and
no_new_privs (setpriv). Probes (startup, readiness, liveness: httpGet, tcpSocket) run from the
host against the pod's IP with their rendered timings; a failed liveness probe or an exit
restarts the container with the kubelet's back-off, and every outcome is recorded.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
PROBE_KINDS = ("startupProbe", "readinessProbe", "livenessProbe")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names are replaced, unknown ones kept, $$ escapes."""
    out = VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), text.replace("$$(", "\0"))
    return out.replace("\0", "$(")


@dataclass
class Mount:
    host: Path
    path: str
    read_only: bool


@dataclass
class Container:
    """A resolved container: what the kubelet would exec, and how."""

    name: str
    argv: list[str]
    env: dict[str, str]
    workdir: str
    uid: int
    gid: int
    read_only_root: bool
    mounts: list[Mount]
    binds: list[tuple[str, str]]  # the image's own filesystem: (host path, path in the image)
    ports: dict[str, int]  # declared container ports by name ("" when unnamed)
    probes: dict[str, dict]
    log: Path
    # filled in while running
    proc: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    started: bool = False  # startup probe passed (or none)
    ready: bool = False
    events: list[str] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)  # set: not restarted until cleared


def sandbox_argv(c: Container, netns: str, hostname: str) -> list[str]:
    """``ip netns exec <pod> bwrap ... setpriv ... <argv>`` for container ``c``."""
    cmd = ["ip", "netns", "exec", netns, "bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc",
           "--unshare-uts", "--hostname", hostname[:63]]
    for name in ("usr", "etc", "var"):
        cmd += ["--ro-bind", f"/{name}", f"/{name}"]
    for link in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink(f"/{link}"):
            cmd += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
    made: set[str] = set()
    system = ("/usr", "/etc", "/var")
    for path in [p for _, p in c.binds] + [m.path for m in c.mounts]:
        parent = str(Path(path).parent)
        for d in reversed([p for p in [parent, *map(str, Path(parent).parents)] if p != "/"]):
            # world-readable parents, as in an image (bwrap would make them 0700)
            if d not in made and not d.startswith(system):
                cmd += ["--perms", "0755", "--dir", d]
                made.add(d)
    for host, path in c.binds:
        cmd += ["--ro-bind", host, path]
    for m in c.mounts:
        cmd += ["--ro-bind" if m.read_only else "--bind", str(m.host), m.path]
    cmd += ["--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm", "--proc", "/proc"]
    if c.read_only_root:
        cmd += ["--remount-ro", "/"]
    cmd += ["--chdir", c.workdir, "--clearenv"]
    for k, v in c.env.items():
        cmd += ["--setenv", k, v]
    cmd += ["setpriv", f"--reuid={c.uid}", f"--regid={c.gid}", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--bounding-set=-all", "--", *c.argv]
    return cmd


def probe_once(spec: dict, pod_ip: str, ports: dict[str, int]) -> tuple[bool, str]:
    """One probe attempt, as the kubelet makes it from the node to the pod's IP."""
    timeout = float(spec.get("timeoutSeconds", 1))
    handler = spec.get("httpGet") or spec.get("tcpSocket")
    port = handler.get("port") if handler else None
    port = ports.get(port, 0) if isinstance(port, str) else int(port or 0)
    try:
        if "httpGet" in spec:
            url = f"http://{pod_ip}:{port}{spec['httpGet'].get('path', '/')}"
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - a pod on this machine
                return 200 <= resp.status < 400, f"HTTP {resp.status}"
        if "tcpSocket" in spec:
            with socket.create_connection((pod_ip, port), timeout=timeout):
                return True, "connected"
    except Exception as exc:  # noqa: BLE001 - any failure is a failed probe
        return False, type(exc).__name__ + ": " + str(exc)[:120]
    return False, f"unsupported probe {sorted(spec)}"


class Kubelet(threading.Thread):
    """Runs one container for its pod: start, probes, restarts (restartPolicy Always)."""

    def __init__(self, c: Container, netns: str, pod_ip: str, hostname: str):
        super().__init__(name=f"kubelet-{hostname}-{c.name}", daemon=True)
        self.c, self.netns, self.pod_ip, self.hostname = c, netns, pod_ip, hostname
        self.stopping = threading.Event()

    def note(self, text: str) -> None:
        self.c.events.append(f"{time.monotonic() - self.c.started_at:7.1f}s {text}")

    def start_process(self) -> None:
        c = self.c
        log = c.log.open("ab")
        c.proc = subprocess.Popen(sandbox_argv(c, self.netns, self.hostname), stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        c.started_at, c.started, c.ready = time.monotonic(), "startupProbe" not in c.probes, False
        self.note(f"started (pid {c.proc.pid})")

    def kill(self) -> None:
        if self.c.proc and self.c.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.c.proc.pid, signal.SIGKILL)
            self.c.proc.wait(10)

    def restart(self, why: str, backoff: float) -> None:
        self.note(f"{why}: restarting (back-off {backoff:.0f} s)")
        self.kill()
        self.c.restarts += 1
        self.c.ready = False
        deadline = time.monotonic() + backoff
        while (time.monotonic() < deadline or self.c.hold.is_set()) and not self.stopping.is_set():
            time.sleep(0.2)
        if not self.stopping.is_set():
            self.start_process()

    def run(self) -> None:
        self.start_process()
        failures = {k: 0 for k in PROBE_KINDS}
        next_at = {k: self.c.started_at + float(self.c.probes[k].get("initialDelaySeconds", 0))
                   for k in self.c.probes}
        backoff = 10.0
        while not self.stopping.is_set():
            c = self.c
            if c.proc and c.proc.poll() is not None:
                self.restart(f"exited with {c.proc.returncode}", backoff)
                backoff, failures = min(backoff * 2, 300.0), dict.fromkeys(failures, 0)
                next_at = {k: c.started_at for k in c.probes}
                continue
            now = time.monotonic()
            for kind in PROBE_KINDS:
                spec = c.probes.get(kind)
                if spec is None or now < next_at[kind] or (kind != "startupProbe" and not c.started) or (
                        kind == "startupProbe" and c.started):
                    continue
                next_at[kind] = now + float(spec.get("periodSeconds", 10))
                ok, detail = probe_once(spec, self.pod_ip, c.ports)
                if ok:
                    failures[kind] = 0
                    if kind == "startupProbe":
                        c.started = True
                        self.note(f"startupProbe passed ({detail}) after {now - c.started_at:.1f} s")
                    elif kind == "readinessProbe" and not c.ready:
                        c.ready = True
                        self.note(f"readinessProbe passed ({detail}): ready")
                    continue
                failures[kind] += 1
                if failures[kind] >= int(spec.get("failureThreshold", 3)):
                    if kind == "readinessProbe":
                        if c.ready:
                            self.note(f"readinessProbe failed ({detail}): not ready")
                        c.ready = False
                    else:
                        self.restart(f"{kind} failed {failures[kind]}x ({detail})", 0.0)
                        failures = dict.fromkeys(failures, 0)
                        next_at = {k: c.started_at for k in c.probes}
                        break
            if "readinessProbe" not in c.probes:
                c.ready = c.started and c.proc is not None and c.proc.poll() is None
            time.sleep(0.1)
        self.kill()

    def stop(self) -> None:
        self.stopping.set()
        self.c.hold.clear()
        self.join(15)
        self.kill()
