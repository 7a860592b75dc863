"""Integration: a dead or hung Redis costs milliseconds, not the service; an online store that
comes back empty is refilled without an operator.

One transformer with its defaults (Feast online store on Redis, Redis result cache) on a private
redis-server that the tests hang (SIGSTOP), kill (SIGKILL) and restart empty, in front of the
session's predictor."""

from __future__ import annotations

import concurrent.futures
import time
import uuid

import httpx
import orjson
import pytest

from servingkit import RedisServer, outputs, start_transformer, v2

pytestmark = [pytest.mark.integration, pytest.mark.slow]
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def faulty(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving-faults")
    redis_server = RedisServer(tmp)
    project = f"test_faults_{uuid.uuid4().hex[:6]}"
    t = start_transformer(stack.bundle, tmp, "transformer-faults", f"127.0.0.1:{stack.predictor.http_port}",
                          REDIS_URL=redis_server.url, RUNS_DIR=str(tmp / "runs"),
                          FEAST_PROJECT=project, HEAL_INTERVAL_SECONDS="1",
                          CIRCUIT_OPEN_SECONDS="0.5")
    t.feast_project = project
    try:
        t.wait_ready(180)
        yield t, redis_server
    finally:
        t.stop()
        redis_server.resume() if redis_server.proc.poll() is None else None
        redis_server.stop()


def post(t, body, timeout=10.0):
    return httpx.post(f"{t.url}/v2/models/recommender/infer", content=orjson.dumps(body), headers=JSON,
                      timeout=timeout)


def timed(t, body):
    start = time.perf_counter()
    r = post(t, body)
    return r, time.perf_counter() - start


def known_users(stack, n):
    import pandas as pd

    return pd.read_parquet(stack.bundle / "users.parquet", columns=["user_id"])["user_id"].astype(int).tolist()[:n]


def test_a_hung_redis_costs_each_request_a_deadline_at_most(stack, faulty):
    t, redis_server = faulty
    users = known_users(stack, 40)
    r = post(t, v2([users[0]], k=5))
    assert r.status_code == 200 and "fallback" not in r.json()["parameters"], r.text
    redis_server.pause()
    try:
        sequential = [timed(t, v2([u], k=5, use_cache=bool(i % 2))) for i, u in enumerate(users[1:11])]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            parallel = list(pool.map(lambda u: timed(t, v2([u], k=5)), users[11:35]))
    finally:
        redis_server.resume()
    for r, seconds in sequential + parallel:
        assert r.status_code == 200, r.text
        assert seconds < 0.5, seconds  # deadlines 0.05 s (cache) + 0.1 s (online store), then open circuits
        reasons = r.json()["parameters"].get("fallback", "")
        assert "feature_store_down" in reasons or "redis_down" in reasons, reasons
        assert len(outputs(r.json())["item_id"]) == 5
    # while both were down, the model still answered (the predictor's own rows), not popularity
    assert all("predictor" not in r.json()["parameters"].get("fallback", "") for r, _ in parallel)


def test_a_killed_redis_fails_fast_and_an_empty_one_is_refilled(stack, faulty):
    t, redis_server = faulty
    users = known_users(stack, 20)
    redis_server.kill()
    for u in users[:5]:
        r, seconds = timed(t, v2([u], k=5, use_cache=False))
        assert r.status_code == 200 and seconds < 0.5
        assert "feature_store_down" in r.json()["parameters"]["fallback"]
    redis_server.start()  # back, and empty: it kept nothing
    time.sleep(0.6)  # the open circuits let a probe through
    deadline = time.monotonic() + 10
    seen_miss = False
    while True:
        r = post(t, v2([users[5]], k=5, use_cache=False))
        assert r.status_code == 200
        reasons = r.json()["parameters"].get("fallback", "")
        assert "cold_start" not in reasons  # a known user is never a cold start for a lost row
        seen_miss |= "feature_store_miss" in reasons
        if not reasons:
            break
        assert time.monotonic() < deadline, f"still degraded 10 s after Redis came back: {reasons}"
        time.sleep(0.2)
    assert seen_miss  # the empty store was noticed ...
    for u in users[6:12]:  # ... and refilled: every known user's row is back
        assert "fallback" not in post(t, v2([u], k=5, use_cache=False)).json()["parameters"]
    metrics = httpx.get(f"{t.url}/metrics").text
    healed = [line for line in metrics.splitlines() if line.startswith("recommender_online_rows_healed_total")]
    assert healed and float(healed[0].split()[-1]) >= len(known_users(stack, 10**6))


def test_an_online_store_behind_the_version_is_answered_from_the_version_and_refreshed(stack, faulty, tmp_path,
                                                                                       monkeypatch):
    """A row older than the model version's (an old snapshot restored): the version's row answers,
    flagged feature_store_behind, and the healer rewrites the stale row; later rows are kept."""
    from predictors.user_features import FeastFeatures
    from recsys.config import get_settings

    t, redis_server = faulty
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))  # this process's copy of the Feast registry
    get_settings.cache_clear()
    users = known_users(stack, 40)[30:]
    online = FeastFeatures(None, 50, materialize="never", redis_url=redis_server.url, project=t.feast_project)
    rows = online.get(users)
    stale = dict(rows[users[0]], last_ts=1, recent_items=rows[users[0]]["recent_items"][:1])
    online.write_rows([stale])
    reasons = post(t, v2([users[0]], k=5, use_cache=False)).json()["parameters"].get("fallback", "")
    assert "feature_store_behind" in reasons and "cold_start" not in reasons
    deadline = time.monotonic() + 10
    while online.get([users[0]])[users[0]]["last_ts"] == 1:  # traffic keeps notifying the rate-limited healer
        assert time.monotonic() < deadline, "the stale row was not refreshed"
        post(t, v2([users[0]], k=5, use_cache=False))
        time.sleep(0.2)
    assert "fallback" not in post(t, v2([users[0]], k=5, use_cache=False)).json()["parameters"]
