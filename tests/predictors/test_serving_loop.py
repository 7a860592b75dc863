"""Integration: the feedback loop on live servers. Events go through the transformer into the
durable log, the stream consumer applies them to the online store (and the next answer changes
within seconds) and archives them; with the log's Redis down, events are spooled, replayed
when it is back: the acknowledged events are exactly the archived ones, applied to the online
rows once each although the log (and so the raw archive) holds a client's retry twice."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import httpx
import orjson
import pandas as pd
import pytest

from servingkit import REPO, RedisServer, free_port, outputs, server_env, start_transformer, v2

pytestmark = [pytest.mark.integration, pytest.mark.slow]
JSON = {"content-type": "application/json"}


def post(t, body, model="recommender"):
    return httpx.post(f"{t.url}/v2/models/{model}/infer", content=orjson.dumps(body), headers=JSON, timeout=10)


def event(user, item, **extra):
    inputs = [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [user]},
              {"name": "item_id", "datatype": "INT64", "shape": [1], "data": [item]}]
    for name, value in extra.items():
        kind = "INT64" if isinstance(value, int) else "FP64" if isinstance(value, float) else "BYTES"
        inputs.append({"name": name, "datatype": kind, "shape": [1], "data": [value]})
    return {"inputs": inputs}


class Consumer:
    def __init__(self, bundle, env, log):
        self.log, self.metrics_port = log, free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "recsys.online.consumer", "--model_dir", str(bundle),
                                      "--metrics-port", str(self.metrics_port)], cwd=REPO, env=env,
                                     stdout=log.open("w"), stderr=subprocess.STDOUT)

    def applied(self) -> float:
        """recommender_consumer_applied_total: events applied to online rows (first deliveries)."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return next(float(line.split()[1]) for line in text.splitlines()
                    if line.startswith("recommender_consumer_applied_total "))

    def wait_ready(self, seconds=180.0):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            if "consumer " in self.log.read_text() and "history_len" in self.log.read_text():
                return self
            time.sleep(0.3)
        raise TimeoutError(self.log.read_text()[-3000:])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)


@pytest.fixture(scope="module")
def loop(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving-loop")
    redis_server = RedisServer(tmp)
    env = {"REDIS_URL": redis_server.url, "RUNS_DIR": str(tmp / "runs"),
           "FEAST_PROJECT": f"test_loop_{uuid.uuid4().hex[:6]}", "SPOOL_DIR": str(tmp / "spool")}
    t = start_transformer(stack.bundle, tmp, "transformer-loop", f"127.0.0.1:{stack.predictor.http_port}", **env)
    consumer = None
    try:
        t.wait_ready(180)
        consumer = Consumer(stack.bundle, server_env(**env), tmp / "consumer.log").wait_ready()
        yield t, redis_server, tmp, consumer
    finally:
        t.stop()
        if consumer is not None:
            consumer.stop()
        redis_server.stop()


def archive(tmp):
    """One row per event_id (what every reader of the archive sees)."""
    from recsys.online.archive import read_archive

    return read_archive(tmp / "runs" / "events" / "archive")


def raw_archive(tmp) -> pd.DataFrame:
    """Every row the consumer wrote, duplicates included (at-least-once archiving)."""
    files = sorted((tmp / "runs" / "events" / "archive").glob("date=*/part-*.parquet"))
    return pd.concat([pd.read_parquet(f, columns=["event_id", "user_id"]) for f in files], ignore_index=True)


def wait_for(predicate, seconds=30.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_an_event_changes_the_next_answer_within_seconds_and_is_archived(stack, loop):
    t, _, tmp, _ = loop
    users = pd.read_parquet(stack.bundle / "users.parquet")
    uid = int(users["user_id"].iloc[5])
    first = post(t, v2([uid], k=10, use_cache=False)).json()
    assert "fallback" not in first["parameters"] and first["parameters"]["request_id"]
    top = outputs(first)["item_id"][0]
    e = post(t, event(uid, top, event_type="click", position=0, request_id=first["parameters"]["request_id"]),
             model="events")
    assert e.status_code == 200, e.text
    assert e.json()["parameters"]["durable"] == "log" and outputs(e.json())["accepted"] == [True]
    event_id = outputs(e.json())["event_id"][0]
    assert wait_for(lambda: top not in outputs(post(t, v2([uid], k=10)).json())["item_id"]), \
        "the consumer did not apply the event to the online features"  # how fast: make loop-demo measures it
    row = archive(tmp).set_index("event_id").loc[event_id]
    assert (row["user_id"], row["item_id"], row["event_type"], row["position"]) == (uid, top, "click", 0)


def test_events_survive_the_log_going_down_spooled_and_replayed_once(stack, loop):
    from recsys.online.archive import raw_rows

    t, redis_server, tmp, consumer = loop
    items = pd.read_parquet(stack.bundle / "items.parquet")["item_id"].astype(int).tolist()
    sent = []
    redis_server.kill()
    try:
        for i in range(8):
            r = post(t, event(10**9 + i, items[i], event_type="view"), model="events")
            assert r.status_code == 200, r.text
            assert r.json()["parameters"]["durable"] == "spool"
            sent.append(outputs(r.json())["event_id"][0])
        again = post(t, event(10**9, items[0], event_type="view", event_id=sent[0]), model="events")
        assert again.status_code == 200  # a client retry: same event_id, still one event
    finally:
        redis_server.start()  # back empty: the spool is what keeps these events
    for i in range(4):
        r = post(t, event(10**9 + 100 + i, items[i], event_type="view"), model="events")
        assert r.status_code == 200
        sent.append(outputs(r.json())["event_id"][0])
    assert wait_for(lambda: set(sent) <= set(archive(tmp)["event_id"]), 45), "spooled events never reached the archive"
    arch = archive(tmp)
    # This test's events (its users only): exactly the acknowledged ones, none lost, none made up.
    assert set(arch.loc[arch["user_id"] >= 10**9, "event_id"]) == set(sent)
    # The raw archive holds the retry twice (spooled twice, logged twice, archived twice): at least
    # once archiving is allowed; every reader keeps one row per event_id.
    raw = raw_archive(tmp)
    assert raw_rows(tmp / "runs" / "events" / "archive") == len(raw)
    assert raw["event_id"].value_counts()[sent[0]] >= 2 and len(raw) > len(arch)
    # Applied to the online rows once per event_id, the retry included: every event this
    # consumer saw is a first delivery exactly once.
    assert wait_for(lambda: consumer.applied() >= len(arch), 30), (consumer.applied(), len(arch))
    time.sleep(1.0)
    assert consumer.applied() == len(arch) == arch["event_id"].nunique()
    metrics = httpx.get(f"{t.url}/metrics").text
    assert "recommender_event_spool_depth 0.0" in metrics


def test_the_consumer_exports_the_metrics_the_dashboard_and_rules_read(loop):
    """The consumer's /metrics carries every series helm/recommender/metrics.txt assigns to it
    (lag, events by type, applied, batches, failures), with the contract's labels."""
    import re

    sys.path.insert(0, str(REPO / "scripts"))
    from deploytool import metrics_contract

    consumer = loop[3]
    text = httpx.get(f"http://127.0.0.1:{consumer.metrics_port}/metrics", timeout=5).text
    exported = set(re.findall(r"^# TYPE (recommender_[a-z0-9_]+) (\w+)", text, re.M))
    for name, (kind, labels, module) in metrics_contract(with_module=True).items():
        if module != "recsys.online.consumer":
            continue
        assert (name, kind) in exported, f"{name} ({kind}) not on the consumer's /metrics"
        for label in labels:
            assert re.search(rf'^{name}{{[^}}]*{label}="', text, re.M), f"{name} has no {label} label"
