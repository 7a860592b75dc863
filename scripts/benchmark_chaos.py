"""Chaos benchmark: the serving stack under steady load while its dependencies fail.

Starts its own redis-server on a free loopback port (nothing kept on disk), a predictor and a
transformer with the defaults of `make serve` (Feast online store and result cache on that
Redis), then drives 8 clients over keep-alive connections for ``--seconds`` with a mix of
requests: 70% known users (half with the result cache, half without), 10% unknown users, 10%
session histories, 10% feedback events. At 25% of the run Redis is killed (SIGKILL), at 50% it
is restarted empty, at 75% the predictor is killed. Writes reports/chaos.json and chaos.md:
per phase, answers by outcome (ranked, each fallback reason, 4xx, 5xx, timeouts) and latency
p50 / p99 / max, the recovery after Redis came back empty, and the targets checked.

    python scripts/benchmark_chaos.py --model-dir <bundle> [--seconds 60] [--out reports]

An expected failure (no champion and no MODEL_DIR, a bundle failing its checksum, no
``redis-server`` on PATH, its port or a server's taken) ends in one line
``error: <what failed>; <what to set>`` on stderr and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from benchmark_serving import REPO, SetupError, free_port, resolve_model_dir, run, start

PHASES = ("steady", "redis_down", "redis_back_empty", "predictor_down")
MIX = (("known_cache", 0.35), ("known", 0.35), ("unknown", 0.10), ("session", 0.10), ("event", 0.10))
TARGETS = {"max_5xx": 0, "max_over_1s": 0, "redis_down_p99_ms": 50.0, "known_ranked_within_s": 10.0}


class RedisProcess:
    """A private redis-server, killed and restarted by the scenario; ``persist``: append-only file
    fsynced on every write (what the chart's Redis runs with), else nothing kept."""

    def __init__(self, work: Path, persist: bool = False):
        self.port, self.work, self.proc, self.persist = free_port(), work, None, persist

    def start(self) -> None:
        """Start it and wait until it answers (it, not another Redis on the port); SetupError
        when there is no ``redis-server`` or it cannot serve on its port."""
        import redis

        binary = which_redis_server()
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        log = self.work / "redis-server.log"
        with log.open("a") as fh:
            self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                          *durability, "--dir", str(self.work)], stdout=fh, stderr=subprocess.STDOUT)
        end = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:  # checked once more after the deadline: a ping can outlast it
                raise self._exit_error(log)
            if time.monotonic() >= end:
                break
            try:
                client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
                if int(client.info("server")["process_id"]) == self.proc.pid:
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        self.kill()
        raise SetupError(f"redis-server on 127.0.0.1:{self.port} did not answer in 10 s (or another server holds "
                         f"the port); free the port, or rerun (see {log})")

    def _exit_error(self, log: Path) -> SetupError:
        assert self.proc is not None
        text = log.read_text(errors="replace")
        last = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "no output")
        if "address already in use" in text.lower():
            hint = f"port {self.port} in use; free it, or rerun (a new free port is picked)"
        else:
            hint = f"see {log}"
        return SetupError(f"redis-server could not start on 127.0.0.1:{self.port} (exit "
                          f"{self.proc.returncode}: {last[:200]}); {hint}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def which_redis_server() -> str:
    """The ``redis-server`` binary on PATH; SetupError when there is none."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SetupError("no redis-server on PATH (the benchmark starts its own Redis); install it "
                         "(apt-get install redis-server) or set PATH to include its directory")
    return binary


def request_body(kind: str, uid: int, item: int, history: list[int]) -> tuple[str, bytes]:
    """(path, body) of one request of the mix."""
    if kind == "event":
        return "/v2/models/events/infer", orjson.dumps({"inputs": [
            {"name": "user_id", "datatype": "INT64", "shape": [1], "data": [uid]},
            {"name": "item_id", "datatype": "INT64", "shape": [1], "data": [item]},
            {"name": "event_type", "datatype": "BYTES", "shape": [1], "data": ["click"]}]})
    inputs = [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [uid]},
              {"name": "k", "datatype": "INT64", "shape": [1], "data": [10]},
              {"name": "use_cache", "datatype": "BOOL", "shape": [1], "data": [kind == "known_cache"]}]
    if kind == "session":
        inputs.append({"name": "history", "datatype": "INT64", "shape": [1, len(history)], "data": history})
    return "/v2/models/recommender/infer", orjson.dumps({"id": "c", "inputs": inputs})


class Load:
    """8 client threads, each with one keep-alive connection, recording every request."""

    def __init__(self, port: int, users: list[int], items: list[int], seed: int, concurrency: int = 8,
                 mix: tuple[tuple[str, float], ...] = MIX):
        self.port, self.users, self.items, self.concurrency, self.mix = port, users, items, concurrency, mix
        self.records: list[dict] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.t0 = 0.0
        self.rng = random.Random(seed)

    def _one(self, conn: http.client.HTTPConnection, rng: random.Random) -> tuple[http.client.HTTPConnection, dict]:
        kind = rng.choices([k for k, _ in self.mix], [w for _, w in self.mix])[0]
        uid = rng.choice(self.users) if kind in ("known", "known_cache", "event") else 10**9 + rng.randrange(10**6)
        path, body = request_body(kind, uid, rng.choice(self.items), rng.sample(self.items, 5))
        sent = time.perf_counter()
        rec = {"t": sent - self.t0, "kind": kind}
        try:
            conn.request("POST", path, body, {"content-type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
            rec["status"] = resp.status
            if resp.status == 200:
                params = orjson.loads(raw).get("parameters") or {}
                rec["fallback"] = params.get("fallback", "")
                if kind == "event":
                    outs = {o["name"]: o["data"] for o in orjson.loads(raw)["outputs"]}
                    rec["accepted"], rec["event_id"] = outs["accepted"][0], outs["event_id"][0]
                    rec["durable"] = params.get("durable")
        except TimeoutError:
            rec["status"] = "timeout"
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        except OSError:
            rec["status"] = "conn_error"
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        rec["ms"] = (time.perf_counter() - sent) * 1e3
        return conn, rec

    def _worker(self, i: int) -> None:
        rng = random.Random(self.rng.random() + i)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        out = []
        while not self.stop.is_set():
            conn, rec = self._one(conn, rng)
            out.append(rec)
        with self.lock:
            self.records.extend(out)

    def run(self, seconds: float, events: list[tuple[float, callable]]) -> list[dict]:
        self.t0 = time.perf_counter()
        threads = [threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(self.concurrency)]
        for t in threads:
            t.start()
        for at, action in events:
            time.sleep(max(0.0, at - (time.perf_counter() - self.t0)))
            action()
        time.sleep(max(0.0, seconds - (time.perf_counter() - self.t0)))
        self.stop.set()
        for t in threads:
            t.join(15)
        return sorted(self.records, key=lambda r: r["t"])


def outcome(rec: dict) -> str:
    s = rec["status"]
    if s == 200:
        return rec.get("fallback") or "ranked"
    if isinstance(s, int):
        return f"{s // 100}xx"
    return s


def phase_stats(recs: list[dict]) -> dict:
    ms = np.array([r["ms"] for r in recs]) if recs else np.zeros(0)
    outcomes: dict[str, int] = {}
    for r in recs:
        for part in outcome(r).split(","):
            outcomes[part] = outcomes.get(part, 0) + 1
    events = [r for r in recs if r["kind"] == "event" and r["status"] == 200]
    return {"requests": len(recs), "outcomes": dict(sorted(outcomes.items())),
            "5xx": sum(1 for r in recs if isinstance(r["status"], int) and r["status"] >= 500),
            "4xx": sum(1 for r in recs if isinstance(r["status"], int) and 400 <= r["status"] < 500),
            "timeouts": sum(1 for r in recs if r["status"] in ("timeout", "conn_error")),
            "over_1s": int((ms > 1000).sum()),
            "p50_ms": float(np.percentile(ms, 50)) if ms.size else None,
            "p99_ms": float(np.percentile(ms, 99)) if ms.size else None,
            "max_ms": float(ms.max()) if ms.size else None,
            "events_accepted": f"{sum(1 for r in events if r.get('accepted'))}/{len(events)}"}


def recovery(recs: list[dict], back_at: float, until: float) -> dict:
    """Known users' recommendations after Redis came back empty: when they were answered by the
    model again (no popularity, no cold start) and when no longer from the version's own rows."""
    known = [r for r in recs if r["kind"] in ("known", "known_cache") and back_at <= r["t"] < until]

    def settled(ok) -> float | None:
        bad = [r["t"] for r in known if not ok(r)]
        last_bad = max(bad) if bad else back_at
        return round(last_bad - back_at, 2) if any(r["t"] > last_bad for r in known) else None

    popular = ("cold_start", "predictor_down", "predictor_timeout")
    return {"model_ranked_after_s": settled(lambda r: r["status"] == 200 and not any(p in r.get("fallback", "")
                                                                                      for p in popular)),
            "store_refilled_after_s": settled(lambda r: r["status"] == 200 and not r.get("fallback"))}


def analyse(recs: list[dict], seconds: float) -> dict:
    cuts = [0.0, 0.25 * seconds, 0.5 * seconds, 0.75 * seconds, float("inf")]
    phases = {name: phase_stats([r for r in recs if cuts[i] <= r["t"] < cuts[i + 1]])
              for i, name in enumerate(PHASES)}
    # Up to the second before the predictor is killed: requests in flight at the kill are the next
    # phase's fault (the predictor_down check skips its first second the same way).
    rec = recovery(recs, cuts[2], cuts[3] - 1.0)
    pred = [r for r in recs if r["t"] >= cuts[3] + 1.0 and r["kind"] in ("known", "session") and r["status"] == 200]
    flagged = sum(1 for r in pred if "predictor_down" in r.get("fallback", ""))
    checks = {
        "no_5xx": [sum(p["5xx"] for p in phases.values()), sum(p["5xx"] for p in phases.values()) == 0],
        "none_over_1s": [sum(p["over_1s"] for p in phases.values()),
                         sum(p["over_1s"] for p in phases.values()) == 0],
        "redis_down_p99_ms": [phases["redis_down"]["p99_ms"],
                              (phases["redis_down"]["p99_ms"] or 0) < TARGETS["redis_down_p99_ms"]],
        "known_ranked_within_s": [rec["model_ranked_after_s"], rec["model_ranked_after_s"] is not None
                                  and rec["model_ranked_after_s"] <= TARGETS["known_ranked_within_s"]],
        "predictor_down_flagged": [f"{flagged}/{len(pred)}", bool(pred) and flagged == len(pred)],
    }
    return {"phases": phases, "recovery": rec, "checks": checks, "met": all(ok for _, ok in checks.values())}


def write_markdown(rep: dict, path: Path) -> None:
    lines = ["## Chaos benchmark", "", f"Command: `{rep['command']}`", "",
             f"Model version `{rep['model_version']}`; {rep['seconds']:.0f} s of load from {rep['concurrency']} "
             f"clients (keep-alive), mix {dict(MIX)}; Redis killed at {rep['schedule']['redis_killed']:.0f} s, "
             f"restarted empty at {rep['schedule']['redis_restarted']:.0f} s, predictor killed at "
             f"{rep['schedule']['predictor_killed']:.0f} s. {rep['machine']['cpus']} cores shared by client and "
             "servers.",
             "", "| phase | requests | p50 ms | p99 ms | max ms | 5xx | 4xx | timeouts | > 1 s | events accepted | "
             "outcomes |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, p in rep["phases"].items():
        lines.append(f"| {name} | {p['requests']} | {p['p50_ms']:.1f} | {p['p99_ms']:.1f} | {p['max_ms']:.1f} | "
                     f"{p['5xx']} | {p['4xx']} | {p['timeouts']} | {p['over_1s']} | {p['events_accepted']} | "
                     + ", ".join(f"{k} {v}" for k, v in p["outcomes"].items()) + " |")
    r = rep["recovery"]
    lines += ["", f"After Redis came back empty: known users answered by the model again after "
                  f"{r['model_ranked_after_s']} s; the online store refilled (no `feature_store_miss`) after "
                  f"{r['store_refilled_after_s']} s.", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'yes' if ok else 'NO'} |" for name, (value, ok) in rep["checks"].items()]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=None, help="bundle directory (default: the MLflow champion)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--out", default="reports")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    model_dir = resolve_model_dir(a.model_dir)
    which_redis_server()  # before the bundle is read and servers started
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    work = REPO / "runs" / "bench-chaos" / uuid.uuid4().hex[:8]
    work.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((Path(model_dir) / "manifest.json").read_text())
    users = pd.read_parquet(Path(model_dir) / "users.parquet", columns=["user_id"])["user_id"].astype(int).tolist()
    items = pd.read_parquet(Path(model_dir) / "items.parquet", columns=["item_id"])["item_id"].astype(int).tolist()
    redis_server = RedisProcess(work)
    redis_server.start()
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", TQDM_DISABLE="1", REDIS_URL=redis_server.url,
               FEAST_PROJECT=f"chaos_{uuid.uuid4().hex[:6]}", RUNS_DIR=str(work / "runs"))
    procs: list[subprocess.Popen] = []
    try:
        common = ["--model_name", "recommender", "--model_dir", str(model_dir)]
        pred, _ = start(["-m", "predictors.predictor", *common], env, work / "predictor.log")
        procs.append(pred)
        grpc_port = start.grpc_port  # type: ignore[attr-defined]
        tr, port = start(["-m", "predictors.transformer", *common, "--predictor_host", f"127.0.0.1:{grpc_port}",
                          "--predictor_protocol", "grpc-v2"], env, work / "transformer.log")
        procs.append(tr)
        s = a.seconds
        schedule = {"redis_killed": 0.25 * s, "redis_restarted": 0.5 * s, "predictor_killed": 0.75 * s}
        load = Load(port, users, items, a.seed, a.concurrency)
        recs = load.run(s, [(schedule["redis_killed"], redis_server.kill),
                            (schedule["redis_restarted"], redis_server.start),
                            (schedule["predictor_killed"], pred.kill)])
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
        redis_server.kill()
    rep = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "model_version": manifest["version"],
           "seconds": a.seconds, "concurrency": a.concurrency, "schedule": schedule, "targets": TARGETS,
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
           **analyse(recs, a.seconds)}
    (out / "chaos.json").write_text(json.dumps(rep, indent=2))
    write_markdown(rep, out / "chaos.md")
    print((out / "chaos.md").read_text())
    return 0 if rep["met"] else 1


if __name__ == "__main__":
    sys.exit(run(main))
