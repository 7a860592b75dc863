"""Unit: V2 request validation, response shaping, session state, popularity, cache circuit breaker."""

from __future__ import annotations

import pandas as pd
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from predictors.engine import Popularity, session_state
from predictors.protocol import RecResult, build_response, parse_event, parse_recommend, result_from_response
from recsys.features import UserState


def req(*inputs) -> InferRequest:
    return InferRequest(model_name="recommender", infer_inputs=list(inputs), request_id="r")


def uid(*ids):
    return InferInput("user_id", [len(ids)], "INT64", data=list(ids))


def test_parse_defaults_and_fields():
    r = parse_recommend(req(uid(1, 2)))
    assert r.user_ids == [1, 2] and r.k == 10 and r.use_cache and r.history is None
    r = parse_recommend(req(uid(3), InferInput("k", [1], "INT64", data=[5]), InferInput("history", [1, 2], "INT64", data=[[7, 8]]),
                            InferInput("use_cache", [1], "BOOL", data=[False])))
    assert (r.k, r.history, r.use_cache) == (5, [7, 8], False)


@pytest.mark.parametrize("inputs,field", [
    ([], "user_id"),
    ([InferInput("user_id", [1], "FP32", data=[1.5])], "user_id"),
    ([InferInput("user_id", [2], "INT64", data=[1])], "user_id"),
    ([uid(1), InferInput("k", [1], "INT64", data=[0])], "k"),
    ([uid(1), InferInput("k", [1], "INT64", data=[101])], "k"),
    ([uid(1, 2), InferInput("history", [1, 1], "INT64", data=[3])], "history"),
    ([uid(1), InferInput("use_cache", [1], "BOOL", data=["yes"])], "use_cache"),
    ([uid(1), InferInput("features", [1], "BYTES", data=["{}"])], "features"),  # transformer clients may not send it
    ([uid(1), uid(2)], "user_id"),
])
def test_parse_rejects_naming_the_field(inputs, field):
    with pytest.raises(InvalidInput) as err:
        parse_recommend(req(*inputs))
    assert field in str(err.value.reason)


def test_features_input_on_the_predictor():
    r = parse_recommend(req(uid(1, 2), InferInput("features", [2], "BYTES", data=['{"user_id": 1, "age": 25}', ""])), allow_features=True)
    assert r.features == [{"user_id": 1, "age": 25}, None]


def test_events():
    ev = parse_event(req(InferInput("user_id", [1], "INT64", data=[4]), InferInput("item_id", [1], "INT64", data=[9])), now=123)
    assert (ev.user_id, ev.item_id, ev.event_type, ev.timestamp) == (4, 9, "view", 123)
    with pytest.raises(InvalidInput, match="event_type"):
        parse_event(req(InferInput("user_id", [1], "INT64", data=[4]), InferInput("item_id", [1], "INT64", data=[9]),
                        InferInput("event_type", [1], "BYTES", data=["boom"])), now=1)


def test_response_round_trip_and_padding():
    res = RecResult([[5, 6], [7]], [[0.5, 0.25], [1.0]], [[0.1, 0.2], [0.3]], {"model_version": "v"})
    resp = build_response("recommender", "id", res, 2, {5: ("A", "Drama"), 7: ("C", "Comedy")})
    outs = {o.name: o for o in resp.outputs}
    assert outs["item_id"].shape == [2, 2] and outs["item_id"].data == [5, 6, 7, -1]
    assert outs["title"].data == ["A", "", "C", ""]
    back = result_from_response(resp)
    assert back.item_ids == [[5, 6], [7]] and back.scores[0] == [0.5, 0.25]


def test_session_state_and_popularity():
    base = UserState(user_id=1, recent_items=[1, 2], seen_items=[1, 2, 3])
    st = session_state(base, 1, [4, 5], history_len=3)
    assert st.recent_items == [2, 4, 5] and st.seen_items == [1, 2, 3, 4, 5]
    assert session_state(None, 9, None, 3) is None
    assert session_state(None, 9, [8], 3).recent_items == [8]
    pop = Popularity(pd.DataFrame({"item_id": [10, 11, 12], "popularity": [1, 5, 3]}))
    assert pop.top(2)[0] == [11, 12] and pop.top(2, seen=[11])[0] == [12, 10]


def test_cache_circuit_breaker_when_redis_is_unreachable():
    import socket

    from predictors.cache import CacheDown, ResultCache

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = ResultCache(f"redis://127.0.0.1:{port}/0", retry_after=30)
    with pytest.raises(CacheDown):
        c.get_many([1], "v:10")
    assert not c.up
    with pytest.raises(CacheDown, match="circuit"):
        c.invalidate(1)
