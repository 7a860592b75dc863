"""Unit: V2 request validation, response shaping, session state, popularity, cache circuit breaker."""

from __future__ import annotations

import pandas as pd
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from predictors.engine import session_state
from predictors.events_model import parse_event
from predictors.protocol import (
    Limits,
    RecResult,
    build_response,
    parse_recommend,
    result_from_response,
)
from recsys.features.catalog import Catalog
from recsys.features.users import UserState
from recsys.models.baselines import Popularity


def req(*inputs) -> InferRequest:
    return InferRequest(model_name="recommender", infer_inputs=list(inputs), request_id="r")


def uid(*ids):
    return InferInput("user_id", [len(ids)], "INT64", data=list(ids))


def test_parse_defaults_and_fields():
    r = parse_recommend(req(uid(1, 2)))
    assert r.user_ids == [1, 2] and r.k == 10 and r.use_cache and r.history is None
    r = parse_recommend(
        req(
            uid(3),
            InferInput("k", [1], "INT64", data=[5]),
            InferInput("history", [1, 2], "INT64", data=[[7, 8]]),
            InferInput("use_cache", [1], "BOOL", data=[False]),
        )
    )
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


@pytest.mark.parametrize("inputs,message", [
    ([InferInput("user_id", [1], "INT64", data=[2**70])], "user_id: 1180591620717411303424 does not fit INT64"),
    ([InferInput("user_id", [1], "INT32", data=[2**31])], "user_id: 2147483648 does not fit INT32"),
    ([InferInput("user_id", [1], "INT64", data=[[[[1]]]])], "user_id: data is nested differently from its shape [1]"),
    ([InferInput("user_id", [2], "INT64", data=[[1], [2]])], "user_id: data is nested differently"),
    ([InferInput("user_id", [1], "INT64", data=[-3])], "user_id: ids must be >= 0, got -3"),
    ([uid(1), InferInput("history", [1, 2], "INT64", data=[[7], [8]])], "history: data is nested differently"),
    ([uid(1), InferInput("history", [1, 2], "INT64", data=[[7, -8]])], "history: ids must be >= 0"),
    ([uid(1), InferInput("k", [1], "INT64", data=[[[5]]])], "k: data is nested differently from its shape [1]"),
])
def test_ids_must_fit_their_type_be_non_negative_and_match_their_shape(inputs, message):
    with pytest.raises(InvalidInput) as err:
        parse_recommend(req(*inputs))
    assert message in str(err.value.reason)


def test_batch_and_history_limits_are_configurable_and_named():
    limits = Limits(max_batch=3, max_history=4)
    assert parse_recommend(req(uid(1, 2, 3)), limits=limits).user_ids == [1, 2, 3]
    with pytest.raises(InvalidInput, match=r"user_id: at most 3 users per request, got 4"):
        parse_recommend(req(uid(1, 2, 3, 4)), limits=limits)
    with pytest.raises(InvalidInput, match=r"history: at most 4 items, got 5"):
        parse_recommend(req(uid(1), InferInput("history", [1, 5], "INT64", data=[[1, 2, 3, 4, 5]])), limits=limits)
    # nested exactly as the shape, or flat: both are V2
    r = parse_recommend(req(uid(1), InferInput("history", [1, 3], "INT64", data=[1, 2, 3])), limits=limits)
    assert r.history == [1, 2, 3]


def test_event_timestamps_must_be_near_now():
    now = 1_700_000_000
    limits = Limits(event_max_past=3600, event_max_future=60)

    def event(ts):
        return req(InferInput("user_id", [1], "INT64", data=[4]), InferInput("item_id", [1], "INT64", data=[9]),
                   InferInput("timestamp", [1], "INT64", data=[ts]))

    assert parse_event(event(now - 3600), now, limits).timestamp == now - 3600
    assert parse_event(event(now + 60), now, limits).timestamp == now + 60
    with pytest.raises(InvalidInput, match=r"timestamp: 99999999999 \(5138-11-16.*\) is not within 3600 s before"):
        parse_event(event(99_999_999_999), now, limits)
    with pytest.raises(InvalidInput, match="timestamp: 1699996399"):
        parse_event(event(now - 3601), now, limits)
    with pytest.raises(InvalidInput, match="item_id: Input should be greater than or equal to 0"):
        parse_event(req(InferInput("user_id", [1], "INT64", data=[4]), InferInput("item_id", [1], "INT64", data=[-9])),
                    now, limits)


def test_features_input_on_the_predictor():
    r = parse_recommend(
        req(uid(1, 2), InferInput("features", [2], "BYTES", data=['{"user_id": 1, "age": 25}', ""])),
        allow_features=True,
    )
    assert r.features == [{"user_id": 1, "age": 25}, None]


def test_events():
    limits = Limits()
    ids = (InferInput("user_id", [1], "INT64", data=[4]), InferInput("item_id", [1], "INT64", data=[9]))
    ev = parse_event(req(*ids), now=123, limits=limits)
    assert (ev.user_id, ev.item_id, ev.event_type, ev.timestamp) == (4, 9, "view", 123)
    assert ev.event_id  # generated: the idempotency key exists even when the client sent none
    with pytest.raises(InvalidInput, match="event_type"):
        parse_event(req(*ids, InferInput("event_type", [1], "BYTES", data=["boom"])), now=1, limits=limits)
    with pytest.raises(InvalidInput, match="value"):
        parse_event(req(*ids, InferInput("event_type", [1], "BYTES", data=["rating"])), now=1, limits=limits)
    with pytest.raises(InvalidInput, match="position"):
        parse_event(req(*ids, InferInput("position", [1], "INT64", data=[-1])), now=1, limits=limits)


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
    items = pd.DataFrame({"item_id": [10, 11, 12], "title": ["a", "b", "c"], "genres": ["Drama"] * 3,
                          "year": [1990] * 3, "popularity": [1, 5, 3], "popularity_recent": [0, 1, 1],
                          "first_ts": [1] * 3, "last_ts": [9] * 3, "mean_rating": [3.0] * 3})
    pop = Popularity().fit(None, Catalog(items))
    assert pop.top(2)[0] == [11, 12] and pop.top(2)[1] == pytest.approx([1.0, 0.6])
    assert pop.top(2, seen=[11]) == ([12, 10], pytest.approx([0.6, 0.2]))


def test_cache_through_its_dependency_when_redis_is_unreachable_and_when_it_is_there():
    import asyncio
    import socket
    import uuid

    from predictors.cache import ResultCache
    from predictors.resilience import CircuitBreaker, Dependency, DependencyDown

    from testkit import REDIS_URL, redis_available

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = ResultCache(f"redis://127.0.0.1:{port}/0")
    dep = Dependency("redis", 0.2, CircuitBreaker("redis", 1, 30.0))

    async def unreachable():
        with pytest.raises(DependencyDown, match="error"):
            await dep.call(lambda: dead.get_many([1], "v:10"))
        with pytest.raises(DependencyDown, match="circuit open"):
            await dep.call(lambda: dead.invalidate(1))

    asyncio.run(unreachable())
    if not redis_available():
        return
    live = ResultCache(REDIS_URL, ttl_seconds=30, prefix=f"test-cache-{uuid.uuid4().hex[:8]}")

    async def round_trip():
        try:
            _, generations = await live.get_many([1, 2], "v:10")
            await live.set_many([(1, {"i": [5]}), (2, {"i": [6]})], "v:10", generations)
            answers, _ = await live.get_many([1, 2, 3], "v:10")
            assert answers == [{"i": [5]}, {"i": [6]}, None]
            # An event drops user 1's answers while a request computes one from the old row: the
            # late write finds a new generation and is not stored (the race that kept stale answers).
            _, before_event = await live.get_many([1], "v:10")
            await live.invalidate(1)
            await live.set_many([(1, {"i": [7]})], "v:10", before_event)
            answers, after_event = await live.get_many([1], "v:10")
            assert answers == [None] and after_event[1] != before_event[1]
            await live.set_many([(1, {"i": [8]})], "v:10", after_event)  # computed after the event: stored
            assert (await live.get_many([1], "v:10"))[0] == [{"i": [8]}]
        finally:
            await live.client.delete(live._key(1), live._key(2))
            await live.client.aclose()

    asyncio.run(round_trip())
