"""Integration: the events endpoint of real transformers (no predictor behind them: events never
reach it) when things go wrong. The event log's Redis dead and the spool full: REST 503 with
Retry-After and a JSON body, gRPC UNAVAILABLE, no traceback in the log. A spool left by a crashed
transformer: replayed into the log at start, with no new event sent. Bad events: 400 / gRPC
INVALID_ARGUMENT naming the field, and every input exactly shape [1]."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from servingkit import free_port, outputs, start_transformer

pytestmark = pytest.mark.integration
JSON = {"content-type": "application/json"}
SPOOL_MAX_BYTES = 1024  # the smallest the settings allow: three or four events


def post_event(t, inputs) -> httpx.Response:
    return httpx.post(f"{t.url}/v2/models/events/infer", content=orjson.dumps({"inputs": inputs}), headers=JSON,
                      timeout=10)


def ids(user, item):
    return [{"name": "user_id", "datatype": "INT64", "shape": [1], "data": [user]},
            {"name": "item_id", "datatype": "INT64", "shape": [1], "data": [item]}]


def grpc_event(t, tensors):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    inputs = []
    for name, datatype, shape, values in tensors:
        contents = (pb.InferTensorContents(int64_contents=values) if datatype == "INT64"
                    else pb.InferTensorContents(bytes_contents=values))
        inputs.append(pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape,
                                                            contents=contents))
    with grpc.insecure_channel(f"127.0.0.1:{t.grpc_port}") as ch:
        with pytest.raises(grpc.RpcError) as err:
            GRPCInferenceServiceStub(ch).ModelInfer(pb.ModelInferRequest(model_name="events", inputs=inputs),
                                                    timeout=10)
    return err.value


@pytest.fixture(scope="module")
def dead_log(bundle_dir, tmp_path_factory):
    """A transformer whose event log (and cache) is a Redis that is not there, with a tiny spool."""
    tmp = tmp_path_factory.mktemp("events-dead-log")
    t = start_transformer(bundle_dir, tmp, "transformer-dead-log", f"127.0.0.1:{free_port()}",
                          ["--feature_source", "bundle"], REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                          SPOOL_DIR=tmp / "spool", SPOOL_MAX_BYTES=SPOOL_MAX_BYTES)
    try:
        yield t.wait_ready(180)
    finally:
        t.stop()


def test_log_down_and_spool_full_is_503_with_retry_after_and_grpc_unavailable(dead_log):
    statuses = []
    for i in range(20):
        r = post_event(dead_log, ids(7, 100 + i))
        statuses.append(r.status_code)
        if r.status_code != 200:
            break
        assert r.json()["parameters"]["durable"] == "spool", r.text
    assert statuses[:-1] and set(statuses[:-1]) == {200} and statuses[-1] == 503, statuses
    assert r.headers["retry-after"] == "5" and r.headers["content-type"] == "application/json", r.headers
    body = r.json()
    assert body["retry_after_seconds"] == 5
    assert body["error"].startswith("event log unavailable (event_log: "), body
    assert "and event spool full (" in body["error"] and f"of {SPOOL_MAX_BYTES} bytes, SPOOL_MAX_BYTES)" in \
        body["error"] and body["error"].endswith("; retry after 5 s"), body
    err = grpc_event(dead_log, [("user_id", "INT64", [1], [7]), ("item_id", "INT64", [1], [1])])
    import grpc

    assert err.code() == grpc.StatusCode.UNAVAILABLE, err
    assert "event spool full" in err.details() and err.details().startswith("event log unavailable"), err.details()
    text = dead_log.log.read_text()
    assert "Traceback" not in text and "Server is not ready" not in text, text[-3000:]
    assert "events refused (503, Retry-After 5 s): event log unavailable" in text


@pytest.mark.parametrize("tensors,code,message", [
    ([("user_id", "INT64", [1], [7])], "INVALID_ARGUMENT", "item_id: required input is missing"),
    ([("user_id", "INT64", [1], [7]), ("item_id", "BYTES", [1], [b"x"])], "INVALID_ARGUMENT",
     "item_id: datatype must be INT64, got BYTES"),
    ([("user_id", "INT64", [2], [7, 8]), ("item_id", "INT64", [1], [1])], "INVALID_ARGUMENT",
     "user_id: shape must be [1] (one value per event), got [2]"),
    ([("user_id", "INT64", [1], [7]), ("item_id", "INT64", [1], [1]), ("event_type", "BYTES", [1], [b"like"])],
     "INVALID_ARGUMENT", "event_type: Input should be"),
], ids=["missing item_id", "item_id of the wrong type", "two user ids", "unknown event_type"])
def test_bad_events_over_grpc_are_invalid_argument_naming_the_field(dead_log, tensors, code, message):
    import grpc

    err = grpc_event(dead_log, tensors)
    assert err.code() == getattr(grpc.StatusCode, code) and err.details().startswith(message), err.details()


@pytest.mark.parametrize("user_id,message", [
    ({"shape": [1], "data": [[[[1]]]]}, "user_id: data is nested differently from its shape [1]"),
    ({"shape": [5], "data": [1]}, "user_id: shape must be [1] (one value per event), got [5]"),
    ({"shape": [1], "data": [1, 2]}, "user_id: shape [1] does not match 2 values"),
    ({"shape": [1, 1], "data": [[1]]}, "user_id: shape must be [1] (one value per event), got [1, 1]"),
], ids=["nested deeper than its shape", "shape of five for one value", "two values", "shape [1, 1]"])
def test_every_event_input_is_exactly_one_value_of_shape_1(dead_log, user_id, message):
    r = post_event(dead_log, [{"name": "user_id", "datatype": "INT64", **user_id},
                              {"name": "item_id", "datatype": "INT64", "shape": [1], "data": [1]}])
    assert r.status_code == 400 and r.json()["error"].startswith(message), r.text


def test_a_spool_left_behind_is_replayed_into_the_log_at_start(bundle_dir, tmp_path):
    """A spool as a crash leaves it: a replay that failed half-way (its batch set aside), events
    appended after it, and a torn last line (the append the crash interrupted, never
    acknowledged). The new transformer replays the events at start, with no event sent to it."""
    from predictors.spool import EventSpool
    from recsys.online.event_log import SqliteEventLog
    from recsys.online.events import Event

    now = int(time.time())
    spool = EventSpool(tmp_path / "spool" / "events.jsonl", max_bytes=1 << 20)
    sent = [Event(event_id=f"left-{i}", user_id=3, item_id=10 + i, timestamp=now - 60 + i) for i in range(5)]
    for e in sent[:3]:
        spool.append(e)

    def log_down(_event):
        raise ConnectionError("event log down")

    with pytest.raises(ConnectionError):
        spool.drain(log_down)
    for e in sent[3:]:
        spool.append(e)
    with spool.path.open("ab") as fh:
        fh.write(b'{"event_id":"torn","user_id":3,"it')
    runs = tmp_path / "runs"
    t = start_transformer(bundle_dir, tmp_path, "transformer-replay", f"127.0.0.1:{free_port()}",
                          ["--feature_source", "bundle"], RUNS_DIR=runs, SPOOL_DIR=tmp_path / "spool")
    try:
        t.wait_ready(180)
        log = SqliteEventLog(runs / "events" / "log.db")
        end = time.monotonic() + 30
        while time.monotonic() < end and {e.event_id for e in log.entries()} != {e.event_id for e in sent}:
            time.sleep(0.2)
        assert [e.event_id for e in log.entries()] == [e.event_id for e in sent], t.log.read_text()[-3000:]
        assert not spool.path.exists() or spool.path.stat().st_size == 0
        assert not spool.draining.exists() and spool.rejected.read_bytes().startswith(b'{"event_id":"torn"')
        assert "recommender_event_spool_depth 0.0" in httpx.get(f"{t.url}/metrics").text
        assert "events left in the spool" in t.log.read_text()
        r = post_event(t, ids(3, 99))  # and the log takes new events directly
        assert r.status_code == 200 and r.json()["parameters"]["durable"] == "log"
        assert outputs(r.json())["accepted"] == [True]
    finally:
        t.stop()
