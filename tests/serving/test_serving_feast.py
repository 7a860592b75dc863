"""Integration: the transformer's default feature source, Feast (embedded SQLite online store),
materialized from the bundle at start-up; events go through Feast's online store."""

from __future__ import annotations

import time
import uuid

import httpx
import orjson
import pytest

from servingkit import outputs, start_transformer, v2

pytestmark = [pytest.mark.integration, pytest.mark.slow]
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def feast_transformer(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving-feast")
    t = start_transformer(stack.bundle, tmp, "transformer-feast", f"127.0.0.1:{stack.predictor.http_port}",
                          RUNS_DIR=str(tmp / "runs"), FEAST_PROJECT=f"test_serving_{uuid.uuid4().hex[:6]}")
    try:
        yield t.wait_ready(180)
    finally:
        t.stop()


def post(t, body, model="recommender"):
    return httpx.post(f"{t.url}/v2/models/{model}/infer", content=orjson.dumps(body), headers=JSON, timeout=10)


def test_feast_features_match_offline_and_events_update_them(stack, feast_transformer):
    from recsys.bundle import load_bundle
    from recsys.features import UserState

    b = load_bundle(stack.bundle)
    row = b.user_table.iloc[5].to_dict()
    uid = int(row["user_id"])
    r = post(feast_transformer, v2([uid], k=10, use_cache=False))
    assert r.status_code == 200 and "fallback" not in r.json()["parameters"], r.text
    want = b.recommender.recommend(UserState.from_row(row), k=10).item_ids.tolist()
    got = outputs(r.json())["item_id"]
    assert got == want
    ev = {"inputs": [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [uid]},
                     {"name": "item_id", "datatype": "INT64", "shape": [1], "data": [got[0]]},
                     {"name": "timestamp", "datatype": "INT64", "shape": [1], "data": [int(time.time())]}]}
    e = post(feast_transformer, ev, model="events")
    assert e.status_code == 200 and outputs(e.json())["accepted"] == [True], e.text
    after = outputs(post(feast_transformer, v2([uid], k=10, use_cache=False)).json())["item_id"]
    assert got[0] not in after
    # An unknown user's first event creates a row: no longer a cold start, history embedded.
    new = 900000 + int(time.time()) % 1000
    post(feast_transformer, {"inputs": [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [new]},
                                        {"name": "item_id", "datatype": "INT64", "shape": [1], "data": [got[1]]}]}, model="events")
    r = post(feast_transformer, v2([new], k=5, use_cache=False)).json()
    assert "fallback" not in r["parameters"] and got[1] not in outputs(r)["item_id"]
