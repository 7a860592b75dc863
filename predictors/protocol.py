"""The V2 contract of the recommender: request parsing/validation and response shaping.

Every client mistake raises :class:`kserve.errors.InvalidInput` (-> HTTP 400 / gRPC
INVALID_ARGUMENT) with a message naming the field. See docs/serving.md.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse, to_http_parameters

from predictors.tensors import check_layout, flat, ids, ints, shape_of, values

MAX_K = 100
DEFAULT_K = 10

RECOMMENDER_INPUTS = [
    {"name": "user_id", "datatype": "INT64", "shape": [-1]},
    {"name": "k", "datatype": "INT64", "shape": [1], "optional": True},
    {"name": "history", "datatype": "INT64", "shape": [1, -1], "optional": True},
    {"name": "use_cache", "datatype": "BOOL", "shape": [1], "optional": True},
]
RECOMMENDER_OUTPUTS = [
    {"name": "item_id", "datatype": "INT64", "shape": [-1, -1]},
    {"name": "score", "datatype": "FP32", "shape": [-1, -1]},
    {"name": "retrieval_score", "datatype": "FP32", "shape": [-1, -1]},
    {"name": "title", "datatype": "BYTES", "shape": [-1, -1]},
    {"name": "genres", "datatype": "BYTES", "shape": [-1, -1]},
]
# Predictor only (sent by the transformer): the user's online feature row as JSON, "" = unknown.
FEATURES_INPUT = {"name": "features", "datatype": "BYTES", "shape": [-1], "optional": True}
# The event contract is recsys.online.events.Event; these are its V2 inputs (all [1]).
EVENT_INPUTS = [
    {"name": "user_id", "datatype": "INT64", "shape": [1]},
    {"name": "item_id", "datatype": "INT64", "shape": [1]},
    {"name": "event_type", "datatype": "BYTES", "shape": [1], "optional": True},
    {"name": "timestamp", "datatype": "INT64", "shape": [1], "optional": True},
    {"name": "event_id", "datatype": "BYTES", "shape": [1], "optional": True},
    {"name": "value", "datatype": "FP64", "shape": [1], "optional": True},
    {"name": "progress", "datatype": "FP64", "shape": [1], "optional": True},
    {"name": "session_id", "datatype": "BYTES", "shape": [1], "optional": True},
    {"name": "position", "datatype": "INT64", "shape": [1], "optional": True},
    {"name": "request_id", "datatype": "BYTES", "shape": [1], "optional": True},
    {"name": "variant", "datatype": "BYTES", "shape": [1], "optional": True},
]
EVENT_OUTPUTS = [
    {"name": "accepted", "datatype": "BOOL", "shape": [1]},
    {"name": "event_id", "datatype": "BYTES", "shape": [1]},
]


@dataclass(frozen=True)
class Limits:
    """What one request may carry (MAX_BATCH_USERS, MAX_HISTORY_ITEMS, EVENT_MAX_*_SECONDS)."""

    max_batch: int = 256
    max_history: int = 500
    event_max_past: int = 7 * 86_400
    event_max_future: int = 300

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(settings.max_batch_users, settings.max_history_items, settings.event_max_past_seconds,
                   settings.event_max_future_seconds)

    @staticmethod
    def describe(ts: int) -> str:
        """An epoch-seconds timestamp as a UTC date (clamped to what datetime can show)."""
        return dt.datetime.fromtimestamp(max(min(ts, 253402300799), -62135596800), dt.UTC).isoformat()


@dataclass
class RecRequest:
    """A validated recommendation request."""

    user_ids: list[int]
    k: int = DEFAULT_K
    history: list[int] | None = None
    use_cache: bool = True
    features: list[dict | None] | None = None  # predictor only
    request_id: str = ""


@dataclass
class RecResult:
    """Per-user results plus response parameters (what both servers return)."""

    item_ids: list[list[int]]
    scores: list[list[float]]
    retrieval_scores: list[list[float]]
    params: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # model stages, milliseconds


# ---------------------------------------------------------------------------------- parsing
def _inputs_by_name(req: InferRequest, known: set[str]) -> dict[str, InferInput]:
    inputs: dict[str, InferInput] = {}
    for inp in req.inputs or []:
        name = getattr(inp, "name", None)
        if name not in known:
            raise InvalidInput(f"{name}: unknown input (expected one of {sorted(known)})")
        if name in inputs:
            raise InvalidInput(f"{name}: given more than once")
        inputs[name] = inp
    return inputs


def _parse_user_ids(inputs: dict[str, InferInput], limits: Limits) -> list[int]:
    if "user_id" not in inputs:
        raise InvalidInput("user_id: required input is missing (INT64 [B])")
    uid = inputs["user_id"]
    shape = shape_of(uid)
    if len(shape) != 1:
        raise InvalidInput(f"user_id: shape must be [B], got {shape}")
    users = ids(uid, "user_id", shape)
    if not users:
        raise InvalidInput("user_id: needs at least one user")
    if len(users) > limits.max_batch:
        raise InvalidInput(f"user_id: at most {limits.max_batch} users per request, got {len(users)}")
    return users


def _parse_k(inp: InferInput) -> int:
    if shape_of(inp) not in ([1], []):
        raise InvalidInput(f"k: shape must be [1], got {inp.shape}")
    check_layout(inp, "k", shape_of(inp))
    ks = ints(inp, "k")
    if len(ks) != 1:
        raise InvalidInput(f"k: shape must be [1], got {inp.shape}")
    if not 1 <= ks[0] <= MAX_K:
        raise InvalidInput(f"k: must be between 1 and {MAX_K}, got {ks[0]}")
    return ks[0]


def _parse_history(inp: InferInput, n_users: int, limits: Limits) -> list[int]:
    hshape = shape_of(inp)
    if len(hshape) != 2 or hshape[0] != 1:
        raise InvalidInput(f"history: shape must be [1, H], got {hshape}")
    hist = ids(inp, "history", hshape)
    if n_users != 1:
        raise InvalidInput("history: only with a single user_id (B = 1)")
    if len(hist) > limits.max_history:
        raise InvalidInput(f"history: at most {limits.max_history} items, got {len(hist)}")
    return hist


def _parse_use_cache(inp: InferInput) -> bool:
    if inp.datatype != "BOOL":
        raise InvalidInput(f"use_cache: datatype must be BOOL, got {inp.datatype}")
    vals = values(inp)
    if len(vals) != 1 or not isinstance(vals[0], (bool, np.bool_)):
        raise InvalidInput(f"use_cache: must be one boolean, got {vals!r}")
    return bool(vals[0])


def _parse_features(inp: InferInput, n_users: int) -> list[dict | None]:
    if inp.datatype != "BYTES":
        raise InvalidInput(f"features: datatype must be BYTES, got {inp.datatype}")
    vals = values(inp)
    if len(vals) != n_users:
        raise InvalidInput(f"features: one entry per user_id expected, got {len(vals)}")
    rows: list[dict | None] = []
    for v in vals:
        if isinstance(v, str):
            v = v.encode()
        if not v:
            rows.append(None)
            continue
        try:
            rows.append(orjson.loads(v))
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"features: not valid JSON ({exc})") from exc
    return rows


def parse_recommend(req: InferRequest, *, allow_features: bool = False, limits: Limits | None = None) -> RecRequest:
    """Validate a V2 recommend request (user_id, k, history, use_cache[, features])."""
    limits = limits or Limits()
    inputs = _inputs_by_name(
        req, {"user_id", "k", "history", "use_cache"} | ({"features"} if allow_features else set())
    )
    users = _parse_user_ids(inputs, limits)
    out = RecRequest(user_ids=users, request_id=str(req.id or uuid.uuid4().hex))
    if "k" in inputs:
        out.k = _parse_k(inputs["k"])
    if "history" in inputs:
        out.history = _parse_history(inputs["history"], len(users), limits)
    if "use_cache" in inputs:
        out.use_cache = _parse_use_cache(inputs["use_cache"])
    if "features" in inputs:
        out.features = _parse_features(inputs["features"], len(users))
    return out


# ---------------------------------------------------------------------------------- responses
def _pad(rows: list[list], k: int, fill) -> list:
    return [list(r[:k]) + [fill] * (k - len(r[:k])) for r in rows]


def build_response(
    model_name: str, request_id: str, result: RecResult, k: int, titles: dict[int, tuple[str, str]]
) -> InferResponse:
    """The recommender's V2 response: item_id, score, retrieval_score, title, genres [B, k]."""
    b = len(result.item_ids)
    ids = _pad(result.item_ids, k, -1)
    flat_ids = [i for r in ids for i in r]
    meta = [titles.get(i, ("", "")) for i in flat_ids]
    outputs = [
        InferOutput("item_id", [b, k], "INT64", data=flat_ids),
        InferOutput("score", [b, k], "FP32", data=[float(x) for r in _pad(result.scores, k, 0.0) for x in r]),
        InferOutput(
            "retrieval_score", [b, k], "FP32", data=[float(x) for r in _pad(result.retrieval_scores, k, 0.0) for x in r]
        ),
        InferOutput("title", [b, k], "BYTES", data=[m[0] for m in meta]),
        InferOutput("genres", [b, k], "BYTES", data=[m[1] for m in meta]),
    ]
    return InferResponse(response_id=request_id or uuid.uuid4().hex, model_name=model_name, infer_outputs=outputs,
                         model_version=str(result.params.get("model_version", "")), parameters=result.params)


def result_from_response(resp: InferResponse) -> RecResult:
    """Read the predictor's answer back (transformer side)."""
    outs = {o.name: o for o in resp.outputs}
    b, k = [int(s) for s in outs["item_id"].shape]

    def rows(name, cast):
        vals = (
            flat(outs[name].data) if not isinstance(outs[name].data, np.ndarray) else outs[name].data.ravel().tolist()
        )
        return [[cast(v) for v in vals[i * k:(i + 1) * k]] for i in range(b)]

    ids = rows("item_id", int)
    keep = [[j for j, v in enumerate(r) if v >= 0] for r in ids]
    sc, rs = rows("score", float), rows("retrieval_score", float)
    params = dict(resp.parameters or {})
    if any(not isinstance(v, (str, bool, int, float)) for v in params.values()):  # gRPC InferParameter
        params = to_http_parameters(params)
    return RecResult([[r[j] for j in kk] for r, kk in zip(ids, keep)], [[r[j] for j in kk] for r, kk in zip(sc, keep)],
                     [[r[j] for j in kk] for r, kk in zip(rs, keep)], params)


def json_param(d: dict) -> str:
    """Latency and other structured parameters travel as JSON strings (gRPC parameters have no floats)."""
    return orjson.dumps(d).decode()
