"""Event-log reliability benchmark: every acknowledged event logged, and applied once, while the
log's Redis dies under load.

Starts its own redis-server with the chart's persistence (append-only file, ``appendfsync
everysec``: helm/redis/values.yaml), a predictor, a transformer (Feast online store, result
cache and event log on that Redis) and the stream consumer; drives 8 keep-alive clients for
``--seconds`` with half feedback events, half recommendations. At 1/3 of the run Redis is killed
(SIGKILL), at 1/2 it is restarted (and reloads its append-only file). With everysec a killed
redis-server loses no acknowledged write: Redis write(2)s the AOF buffer to the file before it
sends the replies of that event-loop turn, and the kernel keeps what was written when the
process dies; only the machine or kernel going down loses what was not fsynced yet (about the
last second; up to 2 s when the disk is so slow that Redis postpones the write behind a running
fsync -- the state it logs as "Asynchronous AOF fsync is taking too long", in which a killed
process can lose that much too).

Then waits for the consumer to drain and checks: zero 5xx; the acknowledged event_ids are
exactly the logged ones (the archive plus what the log holds and is not archived yet:
``make events-export``); every event applied to the online rows once (the consumer's applied
counter and the claims in Redis both equal the number of distinct events). Raw archive rows
beyond one per event_id are reported, not failed: archiving is at least once (a batch written
before its acknowledgement failed is written again) and every reader keeps one row per
event_id. Writes reports/events.json and events.md.

    python scripts/benchmark_events.py --model-dir <bundle> [--seconds 60] [--out reports]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
from benchmark_chaos import Load, RedisProcess, phase_stats
from benchmark_serving import REPO, free_port, resolve_model_dir, start

MIX = (("event", 0.5), ("known", 0.3), ("known_cache", 0.2))
PHASES = ("steady", "redis_down", "redis_back")
APPENDFSYNC = "everysec"  # the chart's (helm/redis/values.yaml redis.appendfsync)


def start_redis(redis_server: RedisProcess) -> None:
    """Start (or restart) the benchmark's Redis with the chart's fsync policy."""
    import redis

    redis_server.start()
    redis.Redis.from_url(redis_server.url).config_set("appendfsync", APPENDFSYNC)


def wait_archived(archive_dir: Path, acked: set[str], seconds: float) -> pd.DataFrame:
    """The archive once it holds every acknowledged event (or when ``seconds`` ran out)."""
    sys.path.insert(0, str(REPO))
    from recsys.online.archive import read_archive

    end = time.monotonic() + seconds
    while True:
        arch = read_archive(archive_dir)
        if acked <= set(arch["event_id"]) or time.monotonic() > end:
            return arch
        time.sleep(1.0)


def consumer_metrics(port: int) -> dict[str, float]:
    """The consumer's lag and applied counter from its /metrics."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        for name in ("recommender_consumer_lag", "recommender_consumer_applied_total"):
            if line.startswith(name + " "):
                out[name] = float(line.split()[1])
    return out


def wait_applied(port: int, seconds: float) -> float:
    """The consumer's applied counter once it has nothing left to read and stopped moving."""
    end, last = time.monotonic() + seconds, None
    while True:
        got = consumer_metrics(port)
        applied = got.get("recommender_consumer_applied_total", 0.0)
        if (got.get("recommender_consumer_lag") == 0 and applied == last) or time.monotonic() > end:
            return applied
        last = applied
        time.sleep(2.0)


def claims(redis_url: str, stream: str = "recsys:events") -> int:
    """Event ids claimed as applied (the consumer's idempotency sets, one per event day)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    return sum(int(client.scard(k)) for k in client.scan_iter(f"{stream}:applied:*"))


def export_events(env: dict, work: Path) -> dict:
    """``make events-export`` into the work directory: the logged event ids (archive + log), its summary."""
    out = work / "export.parquet"
    proc = subprocess.run([sys.executable, "-m", "recsys.online.export", "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return {"event_ids": set(pd.read_parquet(out, columns=["event_id"])["event_id"]), "summary": proc.stdout.strip()}


def analyse(recs: list[dict], seconds: float, arch: pd.DataFrame, raw_archive_rows: int, export: dict,
            applied: dict) -> dict:
    """Phases, and the checks: acknowledged == logged, each event applied once, no 5xx."""
    cuts = [0.0, seconds / 3, seconds / 2, float("inf")]
    phases = {name: phase_stats([r for r in recs if cuts[i] <= r["t"] < cuts[i + 1]]) for i, name in enumerate(PHASES)}
    acked = {r["event_id"] for r in recs if r["kind"] == "event" and r["status"] == 200}
    logged = export["event_ids"]
    applicable = set(arch.loc[arch["event_type"] != "impression", "event_id"]) | (logged - set(arch["event_id"]))
    durable = pd.Series([r.get("durable") for r in recs if r["kind"] == "event" and r["status"] == 200])
    five = sum(p["5xx"] for p in phases.values())
    checks = {
        "no_5xx": [five, five == 0],
        "acknowledged_equals_logged": [f"{len(acked)} acknowledged, {len(logged)} logged: {len(acked - logged)} "
                                       f"lost, {len(logged - acked)} logged unacknowledged", acked == logged],
        "applied_once_per_event": [f"applied {applied['counter']:.0f}, claimed {applied['claims']}, events "
                                   f"{len(applicable)}",
                                   applied["counter"] == applied["claims"] == len(applicable)],
        # the consumer lives through the outage here, so none of its redeliveries may be archived twice
        "archived_once_per_event": [f"{raw_archive_rows} archive rows for {len(arch)} event_ids",
                                    raw_archive_rows == len(arch)],
    }
    return {"phases": phases, "acknowledged": len(acked), "logged": len(logged),
            "lost": sorted(acked - logged)[:20], "logged_unacknowledged": sorted(logged - acked)[:20],
            "archive": {"rows": raw_archive_rows, "event_ids": len(arch),
                        "duplicate_rows": raw_archive_rows - len(arch)},
            "applied": applied, "durable": durable.value_counts().to_dict(), "export": export["summary"],
            "checks": checks, "met": all(ok for _, ok in checks.values())}


def write_markdown(rep: dict, path: Path) -> None:
    a = rep["archive"]
    lines = ["## Event log reliability benchmark", "", f"Command: `{rep['command']}`", "",
             f"{rep['seconds']:.0f} s, {rep['concurrency']} keep-alive clients, mix {dict(MIX)}; the log's Redis "
             f"(append-only, appendfsync {rep['redis_appendfsync']}, as the chart runs it) killed at "
             f"{rep['seconds'] / 3:.0f} s, restarted at {rep['seconds'] / 2:.0f} s.",
             "", "| phase | requests | p50 ms | p99 ms | max ms | 5xx | events acknowledged | outcomes |",
             "|---|---|---|---|---|---|---|---|"]
    for name, p in rep["phases"].items():
        lines.append(f"| {name} | {p['requests']} | {p['p50_ms']:.1f} | {p['p99_ms']:.1f} | {p['max_ms']:.1f} | "
                     f"{p['5xx']} | {p['events_accepted']} | " + ", ".join(f"{k} {v}" for k, v in p["outcomes"].items())
                     + " |")
    lines += ["", f"Acknowledged events: {rep['acknowledged']} (durable in: {rep['durable']}); logged (archive + "
                  f"log): {rep['logged']}; export: {rep['export']}.", "",
              f"Archive: {a['rows']} rows for {a['event_ids']} event_ids ({a['duplicate_rows']} duplicate rows). "
              "The consumer does not archive its own redeliveries again (a batch whose acknowledgement failed); "
              "only a consumer killed between writing a batch and acknowledging it leaves a second row, which "
              "every reader drops (one row per event_id).", "",
              "| check | measured | met |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'yes' if ok else 'NO'} |" for name, (value, ok) in rep["checks"].items()]
    path.write_text("\n".join(lines) + "\n")


def run(model_dir: Path, work: Path, a: argparse.Namespace) -> dict:
    """Redis, the servers and the consumer under the load and the Redis kill; what to analyse."""
    sys.path.insert(0, str(REPO))
    from recsys.online.archive import raw_rows, read_archive

    users = pd.read_parquet(model_dir / "users.parquet", columns=["user_id"])["user_id"].astype(int).tolist()
    items = pd.read_parquet(model_dir / "items.parquet", columns=["item_id"])["item_id"].astype(int).tolist()
    redis_server = RedisProcess(work, persist=True)
    start_redis(redis_server)
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", TQDM_DISABLE="1", REDIS_URL=redis_server.url,
               FEAST_PROJECT=f"events_{uuid.uuid4().hex[:6]}", RUNS_DIR=str(work / "runs"))
    archive_dir, metrics_port = work / "runs" / "events" / "archive", free_port()
    procs: list[subprocess.Popen] = []
    try:
        common = ["--model_name", "recommender", "--model_dir", str(model_dir)]
        pred, _ = start(["-m", "predictors.predictor", *common, "--trending", "off"], env, work / "predictor.log")
        procs.append(pred)
        grpc_port = start.grpc_port  # type: ignore[attr-defined]
        tr, port = start(["-m", "predictors.transformer", *common, "--predictor_host", f"127.0.0.1:{grpc_port}",
                          "--predictor_protocol", "grpc-v2", "--trending", "off"], env, work / "transformer.log")
        procs.append(tr)
        procs.append(subprocess.Popen([sys.executable, "-m", "recsys.online.consumer", *common[2:], "--metrics-port",
                                       str(metrics_port)], cwd=REPO, env=env, stdout=(work / "consumer.log").open("w"),
                                      stderr=subprocess.STDOUT))
        recs = Load(port, users, items, a.seed, a.concurrency, MIX).run(
            a.seconds, [(a.seconds / 3, redis_server.kill), (a.seconds / 2, lambda: start_redis(redis_server))])
        acked = {r["event_id"] for r in recs if r["kind"] == "event" and r["status"] == 200}
        wait_archived(archive_dir, acked, 120)
        applied = {"counter": wait_applied(metrics_port, 60), "claims": claims(redis_server.url)}
        export = export_events(env, work)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        redis_server.kill()
    # Read once everything stopped: the unique rows and the raw rows of the same files.
    return {"recs": recs, "arch": read_archive(archive_dir), "raw_archive_rows": raw_rows(archive_dir),
            "export": export, "applied": applied}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--out", default="reports")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    model_dir = Path(resolve_model_dir(a.model_dir))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    work = REPO / "runs" / "bench-events" / uuid.uuid4().hex[:8]
    work.mkdir(parents=True, exist_ok=True)
    got = run(model_dir, work, a)
    rep = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "seconds": a.seconds,
           "concurrency": a.concurrency, "redis_appendfsync": APPENDFSYNC,
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           **analyse(got["recs"], a.seconds, got["arch"], got["raw_archive_rows"], got["export"], got["applied"])}
    (out / "events.json").write_text(json.dumps(rep, indent=2, default=str))
    write_markdown(rep, out / "events.md")
    print((out / "events.md").read_text())
    return 0 if rep["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
