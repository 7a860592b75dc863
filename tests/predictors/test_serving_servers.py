"""Integration: real predictor/transformer servers on loopback ports, the real Redis on 6379 and a
private redis-server (stopped and restarted mid-test)."""

from __future__ import annotations

import sys
import time

import httpx
import orjson
import pytest

from servingkit import outputs, v2  # tests/predictors/servingkit.py

pytestmark = pytest.mark.integration
JSON = {"content-type": "application/json"}


def infer(server, body, model="recommender", raw: bytes | None = None) -> httpx.Response:
    content = raw if raw is not None else orjson.dumps(body)
    return httpx.post(f"{server.url}/v2/models/{model}/infer", content=content, headers=JSON, timeout=10)


@pytest.fixture(scope="module")
def offline(stack):
    from recsys.artifacts.bundle import load_bundle

    return load_bundle(stack.bundle)


def test_known_user_equals_offline_pipeline(stack, offline):
    from recsys.features.users import UserState

    rows = offline.user_table.head(5).to_dict("records")
    r = infer(stack.transformer, v2([int(x["user_id"]) for x in rows], k=10, use_cache=False))
    assert r.status_code == 200, r.text
    out = outputs(r.json())
    params = r.json()["parameters"]
    assert "fallback" not in params and params["model_version"] == offline.version
    for j, row in enumerate(rows):
        want = offline.recommender.recommend([UserState.from_row(row)], k=10)[0]
        assert out["item_id"][j * 10:(j + 1) * 10] == want.item_ids.tolist()
        assert out["score"][j * 10:(j + 1) * 10] == pytest.approx(want.scores.tolist(), rel=1e-5, abs=1e-6)
        assert out["retrieval_score"][j * 10 : (j + 1) * 10] == pytest.approx(
            want.retrieval_scores.tolist(), rel=1e-4, abs=1e-5
        )
        assert not set(want.item_ids.tolist()) & set(row["seen_items"])
    titles = dict(zip(offline.catalog.table["item_id"], offline.catalog.table["title"]))
    assert out["title"][:10] == [titles[i] for i in out["item_id"][:10]]
    # The predictor alone answers the same (it holds the same user table).
    p = infer(stack.predictor, v2([int(rows[0]["user_id"])], k=10))
    assert outputs(p.json())["item_id"] == out["item_id"][:10]


def test_cache_hit_on_second_call(stack, offline):
    uid = int(offline.user_table["user_id"].iloc[7])
    first = infer(stack.transformer, v2([uid], k=5)).json()
    second = infer(stack.transformer, v2([uid], k=5)).json()
    assert first["parameters"]["cache_hit"] is False
    assert second["parameters"]["cache_hit"] is True
    assert outputs(first)["item_id"] == outputs(second)["item_id"]
    off = infer(stack.transformer, v2([uid], k=5, use_cache=False)).json()
    assert off["parameters"]["cache_hit"] is False


def test_unknown_user_gets_popularity_flagged(stack, offline):
    r = infer(stack.transformer, v2([987654321], k=5))
    assert r.status_code == 200
    body = r.json()
    assert body["parameters"]["fallback"] == "cold_start"
    popular = offline.catalog.item_ids[offline.catalog.popular_order[:5]].tolist()
    assert outputs(body)["item_id"] == popular


def test_session_history_embeds_unknown_user(stack, offline):
    hist = offline.catalog.item_ids[:5].tolist()
    r = infer(stack.transformer, v2([987654321], k=5, history=hist))
    body = r.json()
    assert r.status_code == 200 and "fallback" not in body["parameters"]
    assert not set(outputs(body)["item_id"]) & set(hist)


def test_event_changes_next_answer(stack, offline):
    uid = int(offline.user_table["user_id"].iloc[11])
    before = outputs(infer(stack.transformer, v2([uid], k=5)).json())["item_id"]
    assert infer(stack.transformer, v2([uid], k=5)).json()["parameters"]["cache_hit"] is True
    ev = {"id": "e1", "inputs": [
        {"name": "user_id", "datatype": "INT64", "shape": [1], "data": [uid]},
        {"name": "item_id", "datatype": "INT64", "shape": [1], "data": [before[0]]},
        {"name": "event_type", "datatype": "BYTES", "shape": [1], "data": ["click"]},
        {"name": "timestamp", "datatype": "INT64", "shape": [1], "data": [int(time.time())]}]}
    e = infer(stack.transformer, ev, model="events")
    assert e.status_code == 200, e.text
    assert outputs(e.json())["accepted"] == [True]
    after = infer(stack.transformer, v2([uid], k=5)).json()
    assert after["parameters"]["cache_hit"] is False
    assert before[0] not in outputs(after)["item_id"] and outputs(after)["item_id"] != before


def test_redis_stopped_mid_test_then_recovers(stack, offline):
    uid = int(offline.user_table["user_id"].iloc[3])
    t = stack.transformer_b
    assert infer(t, v2([uid], k=5)).status_code == 200
    assert infer(t, v2([uid], k=5)).json()["parameters"]["cache_hit"] is True
    stack.own_redis.stop()
    try:
        r = infer(t, v2([uid], k=5))
        assert r.status_code == 200
        assert "redis_down" in r.json()["parameters"]["fallback"]
        assert len(outputs(r.json())["item_id"]) == 5
        assert 'recommender_redis_up{server="transformer"} 0.0' in httpx.get(f"{t.url}/metrics").text
    finally:
        stack.own_redis.start()
    time.sleep(1.2)  # circuit breaker retry interval
    infer(t, v2([uid], k=5))
    r = infer(t, v2([uid], k=5))
    assert (
        r.status_code == 200
        and "fallback" not in r.json()["parameters"]
        and r.json()["parameters"]["cache_hit"] is True
    )


def test_predictor_stopped_gives_popularity(stack, offline):
    uid = int(offline.user_table["user_id"].iloc[4])
    assert httpx.get(f"{stack.transformer_b.url}/v2/health/ready").status_code == 200
    stack.predictor_b.stop()
    r = infer(stack.transformer_b, v2([uid], k=5, use_cache=False))
    assert r.status_code == 200
    assert r.json()["parameters"]["fallback"] == "predictor_down"
    assert len(outputs(r.json())["item_id"]) == 5
    # --enable_predictor_health_check: readiness follows the predictor (requests still get popularity).
    assert httpx.get(f"{stack.transformer_b.url}/v2/health/ready").status_code != 200


def test_predictor_timeout_gives_popularity(stack, offline):
    uid = int(offline.user_table["user_id"].iloc[4])
    t0 = time.perf_counter()
    r = infer(stack.transformer_slow, v2([uid], k=5))
    assert r.status_code == 200 and time.perf_counter() - t0 < 3
    assert r.json()["parameters"]["fallback"] == "predictor_timeout"


BAD = [
    ("garbage json", b"{not json", "body"),
    ("inputs not a list", b'{"inputs": "x"}', "inputs"),
    ("missing user_id", {"inputs": [{"name": "k", "datatype": "INT64", "shape": [1], "data": [5]}]}, "user_id"),
    ("user_id as FP32", {"inputs": [{"name": "user_id", "datatype": "FP32", "shape": [1], "data": [1.5]}]}, "user_id"),
    ("user_id strings", {"inputs": [{"name": "user_id", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}, "user_id"),
    (
        "user_id wrong shape",
        {"inputs": [{"name": "user_id", "datatype": "INT64", "shape": [1, 2], "data": [1, 2]}]},
        "user_id",
    ),
    (
        "user_id shape/data mismatch",
        {"inputs": [{"name": "user_id", "datatype": "INT64", "shape": [3], "data": [1, 2]}]},
        "user_id",
    ),
    ("k zero", v2([1], k=0), "k"),
    ("k too large", v2([1], k=101), "k"),
    (
        "k as FP32",
        {"inputs": [*v2([1])["inputs"], {"name": "k", "datatype": "FP32", "shape": [1], "data": [5.5]}]},
        "k",
    ),
    (
        "history wrong shape",
        {"inputs": [*v2([1])["inputs"], {"name": "history", "datatype": "INT64", "shape": [2], "data": [1, 2]}]},
        "history",
    ),
    (
        "use_cache not bool",
        {"inputs": [*v2([1])["inputs"], {"name": "use_cache", "datatype": "INT64", "shape": [1], "data": [1]}]},
        "use_cache",
    ),
    (
        "unknown input",
        {"inputs": [*v2([1])["inputs"], {"name": "foo", "datatype": "INT64", "shape": [1], "data": [1]}]},
        "foo",
    ),
    ("empty user_id", {"inputs": [{"name": "user_id", "datatype": "INT64", "shape": [0], "data": []}]}, "user_id"),
    ("user_id beyond INT64",
     b'{"inputs": [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [1180591620717411303424]}]}',
     "user_id: 1180591620717411303424 does not fit INT64"),
    ("user_id nested unlike its shape",
     {"inputs": [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [[[[1]]]]}]},
     "user_id: data is nested differently from its shape [1]"),
    ("too many users", v2(list(range(257))), "user_id: at most 256 users per request, got 257"),
    ("history too long", v2([1], history=list(range(501))), "history: at most 500 items, got 501"),
]


@pytest.mark.parametrize("case,body,field", BAD, ids=[b[0] for b in BAD])
def test_malformed_payloads_are_400_naming_the_field(stack, case, body, field):
    r = infer(stack.transformer, None, raw=body) if isinstance(body, bytes) else infer(stack.transformer, body)
    assert r.status_code == 400, (case, r.status_code, r.text)
    assert field in r.text, (case, r.text)


def test_bad_event_is_400(stack):
    r = infer(
        stack.transformer,
        {"inputs": [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [1]}]},
        model="events",
    )
    assert r.status_code == 400 and "item_id" in r.text
    far = {"inputs": [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [1]},
                      {"name": "item_id", "datatype": "INT64", "shape": [1], "data": [1]},
                      {"name": "timestamp", "datatype": "INT64", "shape": [1], "data": [99999999999]}]}
    r = infer(stack.transformer, far, model="events")
    assert r.status_code == 400 and "timestamp: 99999999999 (5138-" in r.text, r.text


def test_event_for_an_item_the_model_never_had_is_accepted_and_flagged(stack, offline):
    uid = int(offline.user_table["user_id"].iloc[7])
    body = {"inputs": [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [uid]},
                       {"name": "item_id", "datatype": "INT64", "shape": [1], "data": [10**9]}]}
    r = infer(stack.transformer, body, model="events")
    assert r.status_code == 200 and r.json()["parameters"]["unknown_item"] is True, r.text
    known = int(offline.catalog.item_ids[0])
    r = infer(stack.transformer, {"inputs": [body["inputs"][0], {**body["inputs"][1], "data": [known]}]},
              model="events")
    assert r.status_code == 200 and "unknown_item" not in r.json()["parameters"]


def test_request_body_over_the_limit_is_413_rest_and_resource_exhausted_grpc(stack):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    big = b'{"inputs": [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [1]}], "pad": "' + (
        b"x" * 10_000_000) + b'"}'
    r = infer(stack.transformer, None, raw=big)
    assert r.status_code == 413 and "exceeds the limit of 1048576 bytes (MAX_REQUEST_BYTES)" in r.text, r.text[:300]

    def chunks():
        yield big[:1000]
        yield big[1000:]

    r = httpx.post(f"{stack.transformer.url}/v2/models/recommender/infer", content=chunks(),
                   headers={"content-type": "application/json"}, timeout=30)  # no Content-Length: counted
    assert r.status_code == 413, r.text[:300]
    assert infer(stack.transformer, v2([1], k=3)).status_code == 200  # and the server is fine
    with grpc.insecure_channel(f"127.0.0.1:{stack.transformer.grpc_port}") as ch:
        req = pb.ModelInferRequest(model_name="recommender", id="big", inputs=[pb.ModelInferRequest.InferInputTensor(
            name="user_id", datatype="INT64", shape=[1], contents=pb.InferTensorContents(int64_contents=[1]))],
            parameters={"pad": pb.InferParameter(string_param="x" * 2_000_000)})
        with pytest.raises(grpc.RpcError) as err:
            GRPCInferenceServiceStub(ch).ModelInfer(req, timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_grpc_equals_rest(stack, offline):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    uid = int(offline.user_table["user_id"].iloc[1])
    rest = outputs(infer(stack.transformer, v2([uid], k=7, use_cache=False)).json())
    with grpc.insecure_channel(f"127.0.0.1:{stack.transformer.grpc_port}") as ch:
        stub = GRPCInferenceServiceStub(ch)
        req = pb.ModelInferRequest(
            model_name="recommender",
            id="g1",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="user_id", datatype="INT64", shape=[1], contents=pb.InferTensorContents(int64_contents=[uid])
                ),
                pb.ModelInferRequest.InferInputTensor(
                    name="k", datatype="INT64", shape=[1], contents=pb.InferTensorContents(int64_contents=[7])
                ),
                pb.ModelInferRequest.InferInputTensor(
                    name="use_cache", datatype="BOOL", shape=[1], contents=pb.InferTensorContents(bool_contents=[False])
                ),
            ],
        )
        resp = stub.ModelInfer(req, timeout=10)
        from kserve.protocol.infer_type import InferResponse

        got = {o.name: o.data for o in InferResponse.from_grpc(resp).outputs}
        assert list(got["item_id"]) == rest["item_id"]
        assert [t.decode() if isinstance(t, bytes) else t for t in got["title"]] == rest["title"]
        bad = pb.ModelInferRequest(
            model_name="recommender",
            id="g2",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="k", datatype="INT64", shape=[1], contents=pb.InferTensorContents(int64_contents=[7])
                )
            ],
        )
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(bad, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "user_id" in err.value.details()


def test_health_metadata_info_and_metrics(stack, offline):
    t = stack.transformer
    assert httpx.get(f"{t.url}/v2/health/ready").json()["ready"] is True
    meta = httpx.get(f"{t.url}/v2/models/recommender").json()
    assert [i["name"] for i in meta["inputs"]] == ["user_id", "k", "history", "use_cache"]
    assert [o["name"] for o in meta["outputs"]] == ["item_id", "score", "retrieval_score", "title", "genres"]
    info = infer(t, {"inputs": []}, model="recommender-info").json()
    data = orjson.loads(outputs(info)["info"][0])
    assert data["model_version"] == offline.version and len(data["top_features_gain"]) == 10 and data["index"]
    # The predictor runs the load-time speed-ups (test_known_user_equals_offline_pipeline: they keep the answers).
    pinfo = orjson.loads(outputs(infer(stack.predictor, {"inputs": []}, model="recommender-info").json())["info"][0])
    assert (pinfo["serving"]["ranker_backend"], pinfo["serving"]["user_tower_backend"]) == ("compiled", "torchscript")
    text = httpx.get(f"{t.url}/metrics").text
    for name in (
        "recommender_stage_latency_seconds_bucket",
        "recommender_requests_total",
        "recommender_cache_requests_total",
        "recommender_fallbacks_total",
        "recommender_model_info",
        "recommender_redis_up",
        "recommender_errors_total",
    ):
        assert name in text, name
    assert f'recommender_model_info{{server="transformer",version="{offline.version}"}} 1.0' in text
    ptext = httpx.get(f"{stack.predictor.url}/metrics").text
    assert 'recommender_stage_latency_seconds_count{server="predictor",stage="ranking"}' in ptext
    # Each server exports only its own series: no redis_up from the predictor (an unlabelled gauge
    # it never set read 0 and fired RecommenderRedisDown for ever), and its inner end-to-end
    # latency is labelled as the predictor's, apart from what clients see through the transformer.
    assert "recommender_redis_up{" not in ptext and "\nrecommender_redis_up " not in ptext
    assert 'server="transformer"' not in ptext
    assert 'recommender_stage_latency_seconds_count{server="transformer",stage="end_to_end"}' in text


def test_every_dashboard_and_alert_metric_is_on_the_real_servers_metrics(stack):
    """The Grafana dashboard and the alert rules only name metrics the running servers export."""
    import json
    import re

    from servingkit import REPO

    sys.path.insert(0, str(REPO / "scripts"))
    from deploytool import metrics_contract

    chart = REPO / "helm" / "recommender"
    dashboard = json.loads((chart / "dashboards" / "recommender.json").read_text())
    text = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    text += " " + " ".join(p.read_text() for p in (chart / "templates").glob("*rule*.yaml"))
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"\b(recommender_[a-z0-9_]+)\b", text)}
    assert len(used) >= 6, used
    # The stream consumer's own metrics: tests/predictors/test_serving_loop.py checks its /metrics.
    used -= {name for name, (_, _, module) in metrics_contract(with_module=True).items()
             if module == "recsys.online.consumer"}
    exported = set()
    for server in (stack.transformer, stack.predictor):
        exported |= set(re.findall(r"^# TYPE (recommender_[a-z0-9_]+) ", httpx.get(f"{server.url}/metrics").text, re.M))
    assert used <= exported, f"dashboard/rules name metrics the servers do not export: {sorted(used - exported)}"


def test_no_per_request_log_lines_by_default(stack, offline):
    """--request_logs defaults to false: requests leave no access/timing/gRPC-method lines."""
    uid = int(offline.user_table["user_id"].iloc[3])
    for _ in range(3):
        assert infer(stack.transformer, v2([uid], k=5, use_cache=False)).status_code == 200
    for server in (stack.transformer, stack.predictor):
        text = server.log.read_text()
        assert "transformer: model version" in text or "predictor: loaded model version" in text  # the server's own log
        for line in (
            "POST /v2/models/recommender/infer",
            "kserve.io.v2.models.recommender.infer",
            "requestId:",
            "grpc method:",
        ):
            assert line not in text, (server.log, line)
