"""``make loop-demo``: the feedback loop end to end, measured.

1. Split the data by time: ``base`` (before the 80% quantile of all timestamps), slice ``A``
   (80-90%), slice ``B`` (after 90%).
2. Train M0 on ``base`` (the pipeline's stages, in memory).
3. Serve M0 with the local stack: predictor, transformer, stream consumer (embedded SQLite online
   store and event log in a work directory; ``--redis-url`` for Redis).
4. Replay slice A of ``--users`` users (those with interactions in A and in B) through the
   transformer's events endpoint, in time order, with their original timestamps (a backfill: the
   servers run with EVENT_MAX_PAST_SECONDS wide open); after each user's events, poll until that
   user's recommendations changed, and record how long it took (online features, no retraining).
5. Wait until the consumer archived every acknowledged event.
6. Retrain M1 on ``base`` + the archive, as the pipeline's ingest does with ``--events-dir``
   (:func:`recsys.data.interactions.merge_events`).
7. Evaluate on slice B of the replayed users (items new to them): M0 with the rows it was trained
   with (no loop), M0 with the rows the consumer updated (online features only), M1 (retrained).

Writes reports/loop.json and loop.md.

    python scripts/loop_demo.py --data-dir ../shared/data/ml-1m-half [--users 200] [--out reports]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from benchmark_serving import REPO, start

CUTS = (0.8, 0.9)


def split_by_time(interactions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    a, b = np.quantile(interactions["timestamp"], CUTS)
    return (interactions[interactions["timestamp"] < a], interactions[(interactions["timestamp"] >= a)
            & (interactions["timestamp"] < b)], interactions[interactions["timestamp"] >= b])


def call(port: int, path: str, body: dict) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, orjson.dumps(body), {"content-type": "application/json"})
    resp = conn.getresponse()
    raw = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{path}: {resp.status} {raw[:300]!r}")
    return orjson.loads(raw)


def recommend(port: int, uid: int) -> list[int]:
    body = {"id": "d", "inputs": [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [uid]},
                                  {"name": "use_cache", "datatype": "BOOL", "shape": [1], "data": [False]}]}
    out = call(port, "/v2/models/recommender/infer", body)
    return next(o["data"] for o in out["outputs"] if o["name"] == "item_id")


def replay_user(port: int, events: pd.DataFrame) -> tuple[list[str], float | None]:
    """POST the user's events in time order; seconds until the user's answer changed (None: it did not)."""
    uid = int(events["user_id"].iloc[0])
    before = recommend(port, uid)
    ids = []
    for r in events.itertuples():
        inputs = [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [uid]},
                  {"name": "item_id", "datatype": "INT64", "shape": [1], "data": [int(r.item_id)]},
                  {"name": "event_type", "datatype": "BYTES", "shape": [1], "data": ["rating"]},
                  {"name": "value", "datatype": "FP64", "shape": [1], "data": [float(r.rating)]},
                  {"name": "timestamp", "datatype": "INT64", "shape": [1], "data": [int(r.timestamp)]}]
        out = call(port, "/v2/models/events/infer", {"inputs": inputs})
        ids.append(next(o["data"][0] for o in out["outputs"] if o["name"] == "event_id"))
    sent = time.monotonic()
    while time.monotonic() - sent < 30:
        if recommend(port, uid) != before:
            return ids, time.monotonic() - sent
        time.sleep(0.1)
    return ids, None


def evaluate(model_dir: Path, states: list, labels: dict[int, set[int]]) -> tuple[dict, dict]:
    """The model's metrics on ``labels`` with 95% bootstrap intervals, and the per-user values."""
    from recsys.artifacts.bundle import load_bundle
    from recsys.evaluation.bootstrap import metric_intervals, per_user_metrics
    from recsys.evaluation.metrics import evaluate_lists

    b = load_bundle(model_dir)
    lists = {s.user_id: r.item_ids.tolist() for s, r in zip(states, b.recommender.recommend(states, k=100))}
    m = evaluate_lists(lists, labels, len(b.catalog), b.catalog.genre_sets)
    per_user = per_user_metrics(lists, labels)
    return {**{k: m[k] for k in ("ndcg@10", "hr@10", "recall@10", "mrr", "users")},
            **metric_intervals(per_user)}, per_user


def serve(model_dir: Path, env: dict, work: Path, trending: str) -> tuple[list[subprocess.Popen], int]:
    common = ["--model_name", "recommender", "--model_dir", str(model_dir)]
    pred, _ = start(["-m", "predictors.predictor", *common, "--trending", trending], env, work / "predictor.log")
    grpc_port = start.grpc_port  # type: ignore[attr-defined]
    tr, port = start(["-m", "predictors.transformer", *common, "--predictor_host", f"127.0.0.1:{grpc_port}",
                      "--predictor_protocol", "grpc-v2", "--trending", "off"], env, work / "transformer.log")
    consumer = subprocess.Popen([sys.executable, "-m", "recsys.online.consumer", "--model_dir", str(model_dir),
                                 "--metrics-port", "0"], cwd=REPO, env=env, stdout=(work / "consumer.log").open("w"),
                                stderr=subprocess.STDOUT)
    end = time.monotonic() + 300
    while "history_len" not in (work / "consumer.log").read_text():  # the consumer is reading the log
        if consumer.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"consumer did not start:\n{(work / 'consumer.log').read_text()[-3000:]}")
        time.sleep(0.3)
    return [pred, tr, consumer], port


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def replay(port: int, a_events: pd.DataFrame, users: list[int], archive: Path) -> dict:
    """Slice A of ``users`` through the events endpoint; until the consumer archived all of it."""
    from recsys.online.archive import read_archive

    acked, seconds = [], []
    for uid in users:
        ids, dt = replay_user(port, a_events[a_events["user_id"] == uid].sort_values(["timestamp", "item_id"]))
        acked += ids
        seconds.append(dt)
    end = time.monotonic() + 120
    while not set(acked) <= set(read_archive(archive)["event_id"]) and time.monotonic() < end:
        time.sleep(1.0)
    archived = set(read_archive(archive)["event_id"])
    changed = [s for s in seconds if s is not None]
    return {"events_acknowledged": len(acked), "events_archived": len(set(acked) & archived),
            "users_changed": f"{len(changed)}/{len(users)}",
            "seconds_to_changed_answer": {"p50": float(np.median(changed)) if changed else None,
                                          "p90": float(np.percentile(changed, 90)) if changed else None,
                                          "max": float(max(changed)) if changed else None}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None, help="GroupLens ml-1m directory or interaction log (default DATA_DIR)")
    ap.add_argument("--synthetic", action="store_true", help="a small synthetic dataset instead (tests)")
    ap.add_argument("--users", type=int, default=200, help="users whose slice A is replayed")
    ap.add_argument("--trending", choices=("feast", "off"), default="feast")
    ap.add_argument("--out", default="reports")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    work = REPO / "runs" / "loop-demo" / uuid.uuid4().hex[:8]
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", TQDM_DISABLE="1", RUNS_DIR=str(work / "runs"),
               FEAST_PROJECT=f"loop_{uuid.uuid4().hex[:6]}", EVENT_MAX_PAST_SECONDS=str(10**10))
    env.pop("REDIS_URL", None)
    os.environ.update({k: env[k] for k in ("RUNS_DIR", "FEAST_PROJECT", "EVENT_MAX_PAST_SECONDS")})
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(REPO))
    from recsys.config import get_settings
    from recsys.data.interactions import load_data, merge_events
    from recsys.data.movielens import InteractionData
    from recsys.data.synthetic import write_synthetic
    from recsys.features.users import UserState
    from recsys.online.archive import read_archive
    from recsys.online.feature_store import get_store
    from recsys.online.user_rows import get_user_features
    from recsys.training.run import train_bundle

    settings = get_settings()
    data_dir = write_synthetic(work / "data", n_users=300, n_items=400, seed=a.seed) if a.synthetic else \
        (a.data_dir or settings.data_dir)
    data = load_data(data_dir)
    base, a_events, b_events = split_by_time(data.interactions)
    base_data = InteractionData(base.reset_index(drop=True), data.items, data.users)
    t = time.perf_counter()
    m0, _ = train_bundle(base_data, work / "m0", settings, evaluate=False, progress=False)
    timings = {"train_m0": time.perf_counter() - t}
    rng = np.random.default_rng(a.seed)
    eligible = sorted(set(a_events["user_id"]) & set(b_events["user_id"]) & set(base["user_id"]))
    users = sorted(rng.choice(eligible, min(a.users, len(eligible)), replace=False).tolist())
    procs, port = serve(m0, env, work, a.trending)
    try:
        t = time.perf_counter()
        online = replay(port, a_events, users, settings.archive_dir())
        timings["replay"] = time.perf_counter() - t
        live = get_user_features(get_store(), users)
    finally:
        stop(procs)
    t = time.perf_counter()
    retrain = merge_events(base_data, read_archive(settings.archive_dir()), until=2**62)
    m1, _ = train_bundle(retrain, work / "m1", settings, evaluate=False, progress=False)
    timings["train_m1"] = time.perf_counter() - t
    rep = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "data": str(data_dir),
           "split": {"base": len(base), "slice_a": len(a_events), "slice_b": len(b_events), "cuts": CUTS},
           "users_replayed": len(users), "online": online, "timings_s": timings,
           **compare(m0, m1, users, live, base, a_events, b_events, UserState)}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "loop.json").write_text(json.dumps(rep, indent=2, default=float))
    write_markdown(rep, out / "loop.md")
    print((out / "loop.md").read_text())
    return 0 if rep["retrained_beats_static"] and online["events_archived"] == online["events_acknowledged"] else 1


def compare(m0: Path, m1: Path, users: list[int], live: dict, base: pd.DataFrame, a_events: pd.DataFrame,
            b_events: pd.DataFrame, state_cls) -> dict:
    """Slice B of the replayed users (items they had not seen in base or A, in both catalogs):
    M0 static, M0 with the live rows, M1."""
    from recsys.artifacts.bundle import load_bundle

    b0, b1 = load_bundle(m0, verify=False), load_bundle(m1, verify=False)
    catalog = set(b0.catalog.item_ids.tolist()) & set(b1.catalog.item_ids.tolist())
    seen = pd.concat([base, a_events]).groupby("user_id")["item_id"].agg(set)
    labels = {u: (set(g) - seen.get(u, set())) & catalog for u, g in b_events.groupby("user_id")["item_id"]
              if u in set(users)}
    labels = {u: v for u, v in labels.items() if v}
    from recsys.evaluation.bootstrap import paired_difference_ci

    s0, s1 = b0.user_states(), b1.user_states()
    ids = sorted(labels)
    runs = {"m0_static": evaluate(m0, [s0[u] for u in ids], labels),
            "m0_online_features": evaluate(m0, [state_cls.from_row(live[u]) if live.get(u) else s0[u] for u in ids],
                                           labels),
            "m1_retrained": evaluate(m1, [s1[u] for u in ids], labels)}
    models = {name: metrics for name, (metrics, _) in runs.items()}
    static = runs["m0_static"][1]["ndcg@10"]
    versus = {name: {"ndcg@10_diff": d.mean, "ndcg@10_diff_ci95": d.as_list()}
              for name in ("m0_online_features", "m1_retrained")
              for d in [paired_difference_ci(runs[name][1]["ndcg@10"], static)]}
    return {"models": models, "users_evaluated": len(ids), "versus_static": versus,
            "retrained_beats_static": versus["m1_retrained"]["ndcg@10_diff_ci95"][0] > 0}


def write_markdown(rep: dict, path: Path) -> None:
    o = rep["online"]
    lines = ["## Feedback loop demo", "", f"Command: `{rep['command']}`", "",
             f"Data `{rep['data']}` split by time at the {rep['split']['cuts']} quantiles: base "
             f"{rep['split']['base']}, slice A {rep['split']['slice_a']}, slice B {rep['split']['slice_b']} "
             f"interactions. Slice A of {rep['users_replayed']} users replayed as events through the live "
             "transformer (original timestamps).", "",
             f"Online: {o['events_acknowledged']} events acknowledged, {o['events_archived']} in the archive; "
             f"answers changed for {o['users_changed']} users, "
             f"seconds from a user's last event to a changed answer: {o['seconds_to_changed_answer']}.", "",
             f"Slice B, {rep['users_evaluated']} users, items new to them:", "",
             "| model | NDCG@10 [95% CI] | HR@10 | recall@10 | MRR | NDCG@10 - m0_static [95% CI] |",
             "|---|---|---|---|---|---|"]
    for name, m in rep["models"].items():
        lo, hi = m["ndcg@10_ci95"]
        vs = rep["versus_static"].get(name)
        diff = f"{vs['ndcg@10_diff']:+.4f} [{vs['ndcg@10_diff_ci95'][0]:+.4f}, {vs['ndcg@10_diff_ci95'][1]:+.4f}]" \
            if vs else ""
        lines.append(f"| {name} | {m['ndcg@10']:.4f} [{lo:.4f}, {hi:.4f}] | {m['hr@10']:.4f} | {m['recall@10']:.4f} "
                     f"| {m['mrr']:.4f} | {diff} |")
    lines += ["", "The retrained model beats the one that never saw the events when the lower bound of its "
              "paired interval (users resampled, 1,000 times) is above 0: "
              f"{'yes' if rep['retrained_beats_static'] else 'no'}."]
    lines += ["", f"Seconds: {', '.join(f'{k} {v:.0f}' for k, v in rep['timings_s'].items())}."]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
