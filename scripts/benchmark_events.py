"""Event-log reliability benchmark: no acknowledged event lost or applied twice while the log's
Redis dies under load.

Starts its own redis-server (append-only file, fsync on every write: the chart's Redis
settings), a predictor, a transformer (Feast online store, result cache and event log on that
Redis) and the stream consumer; drives 8 keep-alive clients for ``--seconds`` with half
feedback events, half recommendations. At 1/3 of the run Redis is killed (SIGKILL), at 1/2 it is
restarted (and reloads its append-only file). Then waits for the consumer to drain, exports every
logged event and checks: zero 5xx; every acknowledged event_id in the archive; none twice.
Writes reports/events.json and events.md.

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
from benchmark_serving import REPO, resolve_model_dir, start

MIX = (("event", 0.5), ("known", 0.3), ("known_cache", 0.2))
PHASES = ("steady", "redis_down", "redis_back")


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


def analyse(recs: list[dict], seconds: float, arch: pd.DataFrame, export: dict) -> dict:
    cuts = [0.0, seconds / 3, seconds / 2, float("inf")]
    phases = {name: phase_stats([r for r in recs if cuts[i] <= r["t"] < cuts[i + 1]]) for i, name in enumerate(PHASES)}
    acked = {r["event_id"] for r in recs if r["kind"] == "event" and r["status"] == 200}
    archived = set(arch["event_id"])
    durable = pd.Series([r.get("durable") for r in recs if r["kind"] == "event" and r["status"] == 200])
    checks = {
        "no_5xx": [sum(p["5xx"] for p in phases.values()), sum(p["5xx"] for p in phases.values()) == 0],
        "acked_events_archived": [f"{len(acked & archived)}/{len(acked)}", acked <= archived],
        "none_twice_in_export": [export["duplicates_in_export"], export["duplicates_in_export"] == 0],
    }
    return {"phases": phases, "acknowledged": len(acked), "archived_of_acknowledged": len(acked & archived),
            "lost": sorted(acked - archived)[:20], "archive_events": len(archived),
            "durable": durable.value_counts().to_dict(), "export": export, "checks": checks,
            "met": all(ok for _, ok in checks.values())}


def export_events(env: dict, work: Path) -> dict:
    """``make events-export`` into the work directory; its counts plus duplicate ids in the file."""
    out = work / "export.parquet"
    proc = subprocess.run([sys.executable, "-m", "recsys.online.export", "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    df = pd.read_parquet(out)
    return {"rows": len(df), "duplicates_in_export": int(df["event_id"].duplicated().sum()),
            "summary": proc.stdout.strip()}


def write_markdown(rep: dict, path: Path) -> None:
    lines = ["## Event log reliability benchmark", "", f"Command: `{rep['command']}`", "",
             f"{rep['seconds']:.0f} s, {rep['concurrency']} keep-alive clients, mix {dict(MIX)}; the log's Redis "
             f"(append-only, fsync always) killed at {rep['seconds'] / 3:.0f} s, restarted at "
             f"{rep['seconds'] / 2:.0f} s.",
             "", "| phase | requests | p50 ms | p99 ms | max ms | 5xx | events acknowledged | outcomes |",
             "|---|---|---|---|---|---|---|---|"]
    for name, p in rep["phases"].items():
        lines.append(f"| {name} | {p['requests']} | {p['p50_ms']:.1f} | {p['p99_ms']:.1f} | {p['max_ms']:.1f} | "
                     f"{p['5xx']} | {p['events_accepted']} | " + ", ".join(f"{k} {v}" for k, v in p["outcomes"].items())
                     + " |")
    lines += ["", f"Acknowledged events: {rep['acknowledged']} (durable in: {rep['durable']}); in the archive: "
                  f"{rep['archived_of_acknowledged']}; export: {rep['export']['summary']}.", "",
              "| check | measured | met |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'yes' if ok else 'NO'} |" for name, (value, ok) in rep["checks"].items()]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--out", default="reports")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    model_dir = resolve_model_dir(a.model_dir)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    work = REPO / "runs" / "bench-events" / uuid.uuid4().hex[:8]
    work.mkdir(parents=True, exist_ok=True)
    users = pd.read_parquet(Path(model_dir) / "users.parquet", columns=["user_id"])["user_id"].astype(int).tolist()
    items = pd.read_parquet(Path(model_dir) / "items.parquet", columns=["item_id"])["item_id"].astype(int).tolist()
    redis_server = RedisProcess(work, persist=True)
    redis_server.start()
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", TQDM_DISABLE="1", REDIS_URL=redis_server.url,
               FEAST_PROJECT=f"events_{uuid.uuid4().hex[:6]}", RUNS_DIR=str(work / "runs"))
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
                                       "0"], cwd=REPO, env=env, stdout=(work / "consumer.log").open("w"),
                                      stderr=subprocess.STDOUT))
        recs = Load(port, users, items, a.seed, a.concurrency, MIX).run(
            a.seconds, [(a.seconds / 3, redis_server.kill), (a.seconds / 2, redis_server.start)])
        acked = {r["event_id"] for r in recs if r["kind"] == "event" and r["status"] == 200}
        arch = wait_archived(work / "runs" / "events" / "archive", acked, 120)
        export = export_events(env, work)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        redis_server.kill()
    rep = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "seconds": a.seconds,
           "concurrency": a.concurrency, "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           **analyse(recs, a.seconds, arch, export)}
    (out / "events.json").write_text(json.dumps(rep, indent=2, default=str))
    write_markdown(rep, out / "events.md")
    print((out / "events.md").read_text())
    return 0 if rep["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
