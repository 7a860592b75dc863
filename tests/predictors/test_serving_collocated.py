"""Integration: the transformer holding the models itself (`--collocated`, the chart's
`inferenceService.inProcess` layout) answers like the offline pipeline, caches, takes events,
and reports the model stages in its own metrics."""

from __future__ import annotations

import time
import uuid

import httpx
import orjson
import pytest

from servingkit import Server, free_port, outputs, server_env, v2

pytestmark = [pytest.mark.integration]
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def colloc(bundle_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving-collocated")
    prefix = f"test-colloc-{uuid.uuid4().hex[:8]}"
    s = Server(
        [
            "-m",
            "predictors.transformer",
            "--model_name",
            "recommender",
            "--collocated",
            "--model_dir",
            str(bundle_dir),
            "--feature_source",
            "bundle",
            "--cache_prefix",
            prefix,
            "--trending",
            "off",
        ],
        # a generous cache deadline: this test is about what is cached, not about a slow first write
        server_env(REDIS_URL="redis://127.0.0.1:6379/0", RANKER_COMPILE_DIR=tmp / "compiled", RUNS_DIR=tmp / "runs",
                   CACHE_TIMEOUT_SECONDS="1.0"),
        tmp / "collocated.log",
        free_port(),
        free_port(),
    )
    try:
        yield s.wait_ready()
    finally:
        s.stop()
        import redis

        r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        keys = list(r.scan_iter(f"{prefix}:*"))
        if keys:
            r.delete(*keys)


@pytest.fixture(scope="module")
def offline(bundle_dir):
    from recsys.artifacts.bundle import load_bundle

    return load_bundle(bundle_dir)


def post(server, body, model="recommender") -> httpx.Response:
    return httpx.post(f"{server.url}/v2/models/{model}/infer", content=orjson.dumps(body), headers=JSON, timeout=10)


def test_collocated_answers_like_the_offline_pipeline_and_caches(colloc, offline):
    from recsys.features.users import UserState

    rows = offline.user_table.head(4).to_dict("records")
    r = post(colloc, v2([int(x["user_id"]) for x in rows], k=10, use_cache=False))
    assert r.status_code == 200, r.text
    out, params = outputs(r.json()), r.json()["parameters"]
    assert "fallback" not in params and params["model_version"] == offline.version and params["n_candidates"] > 0
    assert {"predictor_retrieval", "predictor_ranking"} <= set(orjson.loads(params["latency_ms"]))
    for j, row in enumerate(rows):
        want = offline.recommender.recommend([UserState.from_row(row)], k=10)[0]
        assert out["item_id"][j * 10:(j + 1) * 10] == want.item_ids.tolist()
        assert out["score"][j * 10:(j + 1) * 10] == pytest.approx(want.scores.tolist(), rel=1e-5, abs=1e-6)
    uid = int(rows[0]["user_id"])
    first = post(colloc, v2([uid], k=5)).json()["parameters"]
    assert first["cache_hit"] is False, first
    second = post(colloc, v2([uid], k=5)).json()["parameters"]
    assert second["cache_hit"] is True, orjson.dumps([first, second]).decode()


def test_collocated_event_changes_next_answer_and_metrics_show_model_stages(colloc, offline):
    uid = int(offline.user_table["user_id"].iloc[6])
    before = outputs(post(colloc, v2([uid], k=5, use_cache=False)).json())["item_id"]
    ev = {"inputs": [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [uid]},
                     {"name": "item_id", "datatype": "INT64", "shape": [1], "data": [before[0]]},
                     {"name": "timestamp", "datatype": "INT64", "shape": [1], "data": [int(time.time())]}]}
    assert outputs(post(colloc, ev, model="events").json())["accepted"] == [True]
    after = outputs(post(colloc, v2([uid], k=5, use_cache=False)).json())["item_id"]
    assert before[0] not in after
    text = httpx.get(f"{colloc.url}/metrics").text
    for stage in ("retrieval", "ranking", "feature_lookup", "end_to_end"):
        assert f'recommender_stage_latency_seconds_count{{server="transformer",stage="{stage}"}}' in text, stage
