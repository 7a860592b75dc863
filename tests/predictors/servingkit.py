"""Real servers on loopback for the serving tests: predictors and transformers as subprocesses
(`python -m predictors.predictor|transformer`, the same commands as `make serve`), free ports
picked at run time, a private redis-server for the tests that stop Redis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free loopback port not handed out before in this session."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


class Server:
    def __init__(self, args: list[str], env: dict, log: Path, http_port: int, grpc_port: int):
        self.args, self.env, self.log = args, env, log
        self._launch(http_port, grpc_port)

    def _launch(self, http_port: int, grpc_port: int) -> None:
        self.http_port, self.grpc_port = http_port, grpc_port
        self.url = f"http://127.0.0.1:{http_port}"
        self.proc = subprocess.Popen(
            [sys.executable, *self.args, "--http_port", str(http_port), "--grpc_port", str(grpc_port)],
            cwd=REPO,
            env=self.env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 120) -> Server:
        end = time.monotonic() + timeout
        relaunched = False
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                text = self.log.read_text()
                if not relaunched and ("address already in use" in text.lower() or "failed to bind" in text.lower()):
                    relaunched = True  # another process took a port between picking and binding
                    self._launch(free_port(), free_port())
                    continue
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.url} not ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def server_env(**extra) -> dict:
    env = dict(os.environ)
    env.update({"PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"})
    env.pop("REDIS_URL", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_predictor(bundle: Path, tmp: Path, name: str, trending: str = "off", **env) -> Server:
    """A predictor (trending counts off unless asked: no stream behind most tests, and Feast's
    import is seconds)."""
    return Server(["-m", "predictors.predictor", "--model_name", "recommender", "--model_dir", str(bundle),
                   "--trending", trending],
                  server_env(RANKER_COMPILE_DIR=tmp / "compiled", **env), tmp / f"{name}.log", free_port(), free_port())


def start_transformer(bundle: Path, tmp: Path, name: str, predictor_host: str, extra_args=(), **env) -> Server:
    env.setdefault("RUNS_DIR", str(tmp / f"runs-{name}"))  # its own event log, spool and Feast state
    return Server(["-m", "predictors.transformer", "--model_name", "recommender", "--predictor_host", predictor_host,
                   "--predictor_protocol", "v2", "--model_dir", str(bundle), "--trending", "off", *extra_args],
                  server_env(**env), tmp / f"{name}.log", free_port(), free_port())


class RedisServer:
    """A private redis-server on a free loopback port (stopping it cannot touch the machine's Redis)."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.tmp = tmp
        self.proc = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--daemonize", "no", "--dir", str(self.tmp)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL: gone at once, connections refused (a crashed Redis); nothing kept (no persistence)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but nothing answers (a hung Redis)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class Stack:
    """predictor + transformer (real Redis 6379, own key prefix) + a second pair with a private
    redis-server, + a transformer whose predictor never answers (timeouts)."""



def v2(user_ids, k=None, history=None, use_cache=None) -> dict:
    inputs = [{"name": "user_id", "datatype": "INT64", "shape": [len(user_ids)], "data": list(user_ids)}]
    if k is not None:
        inputs.append({"name": "k", "datatype": "INT64", "shape": [1], "data": [k]})
    if history is not None:
        inputs.append({"name": "history", "datatype": "INT64", "shape": [1, len(history)], "data": list(history)})
    if use_cache is not None:
        inputs.append({"name": "use_cache", "datatype": "BOOL", "shape": [1], "data": [use_cache]})
    return {"id": uuid.uuid4().hex, "inputs": inputs}


def outputs(resp: dict) -> dict:
    return {o["name"]: o["data"] for o in resp["outputs"]}
