"""Pod networking as a cluster gives it, with iproute2: each pod its own network namespace and
IP (veth to the host), each Service an address on the host that forwards to its ready
endpoints (what kube-proxy does), names resolved through the pod's /etc/hosts.

Addresses: pods 10.77.<n>.2 (host side 10.77.<n>.1), Services 10.96.0.<k> on the host's
loopback device. Namespaces and links are named with the ``smk`` prefix; all of it is removed
by :meth:`Network.close` (and stale leftovers of a killed run by :func:`cleanup`)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

PREFIX = "smk"
SERVICE_DEV = "lo"
SERVICE_NET = "10.96.0."


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc


def cleanup() -> None:
    """Remove every namespace and link a previous (killed) run left behind."""
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(PREFIX):
            ip("netns", "del", name, check=False)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            dev = parts[1].strip().split("@")[0]
            if dev.startswith(PREFIX):
                ip("link", "del", dev, check=False)
    for line in ip("-o", "-4", "addr", "show", "dev", SERVICE_DEV, check=False).stdout.splitlines():
        addr = line.split()[3]
        if addr.startswith(SERVICE_NET):
            ip("addr", "del", addr, "dev", SERVICE_DEV, check=False)


@dataclass
class PodNet:
    netns: str
    ip: str


@dataclass
class Network:
    """The cluster network of one smoke run."""

    pods: list[PodNet] = field(default_factory=list)
    services: dict[str, str] = field(default_factory=dict)  # service key -> its IP
    _proxies: list[asyncio.AbstractServer] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None

    def __post_init__(self) -> None:
        cleanup()

    def add_pod(self) -> PodNet:
        n = len(self.pods) + 1
        netns, host_dev = f"{PREFIX}-pod{n}", f"{PREFIX}h{n}"
        ip("netns", "add", netns)
        ip("link", "add", host_dev, "type", "veth", "peer", "name", "eth0", "netns", netns)
        ip("addr", "add", f"10.77.{n}.1/24", "dev", host_dev)
        ip("link", "set", host_dev, "up")
        ip("addr", "add", f"10.77.{n}.2/24", "dev", "eth0", netns=netns)
        ip("link", "set", "eth0", "up", netns=netns)
        ip("link", "set", "lo", "up", netns=netns)
        ip("route", "add", "default", "via", f"10.77.{n}.1", netns=netns)
        pod = PodNet(netns, f"10.77.{n}.2")
        self.pods.append(pod)
        return pod

    def service_ip(self, key: str) -> str:
        """The address of Service ``key`` (allocated on first use)."""
        if key not in self.services:
            addr = f"{SERVICE_NET}{len(self.services) + 10}"
            ip("addr", "add", f"{addr}/32", "dev", SERVICE_DEV)
            self.services[key] = addr
        return self.services[key]

    # ---------------------------------------------------------------- kube-proxy
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            threading.Thread(target=self._loop.run_forever, name="kube-proxy", daemon=True).start()
        return self._loop

    def forward(self, key: str, port: int, endpoints: Callable[[], list[tuple[str, int]]]) -> str:
        """Listen on Service ``key``'s address and ``port``; each connection goes to the first of
        ``endpoints()`` (ready pods' address and target port) that accepts it."""
        addr = self.service_ip(key)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            upstream = None
            for host, target in endpoints():
                with contextlib.suppress(OSError):
                    upstream = await asyncio.wait_for(asyncio.open_connection(host, target), 2)
                    break
            if upstream is None:  # no ready endpoint: the connection is refused, as with no Endpoints
                writer.close()
                return
            up_reader, up_writer = upstream
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)

        async def start() -> asyncio.AbstractServer:
            return await asyncio.start_server(handle, addr, port)

        server = asyncio.run_coroutine_threadsafe(start(), self._ensure_loop()).result(10)
        self._proxies.append(server)
        return addr

    def close(self) -> None:
        if self._loop is not None:
            for server in self._proxies:
                self._loop.call_soon_threadsafe(server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
        cleanup()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.close()
