"""The V2 contract of the recommender: request parsing/validation and response shaping.

Every client mistake raises :class:`kserve.errors.InvalidInput` (-> HTTP 400 / gRPC
INVALID_ARGUMENT) with a message naming the field. See docs/serving.md.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np
import orjson
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse, to_http_parameters

MAX_K = 100
DEFAULT_K = 10
MAX_BATCH = 256
MAX_HISTORY = 500
EVENT_TYPES = ("view", "click", "rating", "watch", "purchase", "skip")

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
EVENT_INPUTS = [
    {"name": "user_id", "datatype": "INT64", "shape": [1]},
    {"name": "item_id", "datatype": "INT64", "shape": [1]},
    {"name": "event_type", "datatype": "BYTES", "shape": [1], "optional": True},
    {"name": "timestamp", "datatype": "INT64", "shape": [1], "optional": True},
]
EVENT_OUTPUTS = [{"name": "accepted", "datatype": "BOOL", "shape": [1]}, {"name": "history_len", "datatype": "INT64", "shape": [1]}]


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


# ---------------------------------------------------------------------------------- parsing
def _flat(data) -> list:
    out: list = []
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(reversed(x))
        else:
            out.append(x)
    return out


def _values(inp: InferInput) -> list:
    if getattr(inp, "_raw_data", None) is not None:
        try:
            return inp.as_numpy().ravel().tolist()
        except Exception as exc:  # noqa: BLE001 - malformed binary tensor
            raise InvalidInput(f"{inp.name}: cannot decode binary data ({exc})") from exc
    data = inp.data
    if data is None:
        raise InvalidInput(f"{inp.name}: no data")
    if isinstance(data, np.ndarray):
        return data.ravel().tolist()
    if not isinstance(data, (list, tuple)):
        data = [data]
    return _flat(data)


def _shape(inp: InferInput) -> list[int]:
    shape = inp.shape
    try:
        shape = [int(s) for s in shape]
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{inp.name}: shape must be a list of integers, got {shape!r}") from exc
    if any(s < 0 for s in shape):
        raise InvalidInput(f"{inp.name}: shape must not hold negative sizes, got {shape}")
    return shape


def _ints(inp: InferInput, name: str) -> list[int]:
    if inp.datatype not in ("INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8"):
        raise InvalidInput(f"{name}: datatype must be INT64, got {inp.datatype}")
    vals = _values(inp)
    out = []
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                raise InvalidInput(f"{name}: values must be integers, got {v!r}")
        out.append(int(v))
    return out


def _check_numel(inp: InferInput, name: str, vals: list, shape: list[int]) -> None:
    if int(np.prod(shape)) != len(vals):
        raise InvalidInput(f"{name}: shape {shape} does not match {len(vals)} values")


def parse_recommend(req: InferRequest, *, allow_features: bool = False) -> RecRequest:
    """Validate a V2 recommend request (user_id, k, history, use_cache[, features])."""
    inputs: dict[str, InferInput] = {}
    known = {"user_id", "k", "history", "use_cache"} | ({"features"} if allow_features else set())
    for inp in req.inputs or []:
        name = getattr(inp, "name", None)
        if name not in known:
            raise InvalidInput(f"{name}: unknown input (expected one of {sorted(known)})")
        if name in inputs:
            raise InvalidInput(f"{name}: given more than once")
        inputs[name] = inp
    if "user_id" not in inputs:
        raise InvalidInput("user_id: required input is missing (INT64 [B])")
    uid = inputs["user_id"]
    shape = _shape(uid)
    users = _ints(uid, "user_id")
    if len(shape) != 1:
        raise InvalidInput(f"user_id: shape must be [B], got {shape}")
    _check_numel(uid, "user_id", users, shape)
    if not users:
        raise InvalidInput("user_id: needs at least one user")
    if len(users) > MAX_BATCH:
        raise InvalidInput(f"user_id: at most {MAX_BATCH} users per request, got {len(users)}")
    out = RecRequest(user_ids=users, request_id=str(req.id or uuid.uuid4().hex))
    if "k" in inputs:
        ks = _ints(inputs["k"], "k")
        if len(ks) != 1 or _shape(inputs["k"]) not in ([1], []):
            raise InvalidInput(f"k: shape must be [1], got {inputs['k'].shape}")
        if not 1 <= ks[0] <= MAX_K:
            raise InvalidInput(f"k: must be between 1 and {MAX_K}, got {ks[0]}")
        out.k = ks[0]
    if "history" in inputs:
        h = inputs["history"]
        hshape = _shape(h)
        hist = _ints(h, "history")
        if len(hshape) != 2 or hshape[0] != 1:
            raise InvalidInput(f"history: shape must be [1, H], got {hshape}")
        _check_numel(h, "history", hist, hshape)
        if len(users) != 1:
            raise InvalidInput("history: only with a single user_id (B = 1)")
        if len(hist) > MAX_HISTORY:
            raise InvalidInput(f"history: at most {MAX_HISTORY} items, got {len(hist)}")
        out.history = hist
    if "use_cache" in inputs:
        c = inputs["use_cache"]
        if c.datatype != "BOOL":
            raise InvalidInput(f"use_cache: datatype must be BOOL, got {c.datatype}")
        vals = _values(c)
        if len(vals) != 1 or not isinstance(vals[0], (bool, np.bool_)):
            raise InvalidInput(f"use_cache: must be one boolean, got {vals!r}")
        out.use_cache = bool(vals[0])
    if "features" in inputs:
        f = inputs["features"]
        if f.datatype != "BYTES":
            raise InvalidInput(f"features: datatype must be BYTES, got {f.datatype}")
        vals = _values(f)
        if len(vals) != len(users):
            raise InvalidInput(f"features: one entry per user_id expected, got {len(vals)}")
        rows = []
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
        out.features = rows
    return out


@dataclass
class Event:
    user_id: int
    item_id: int
    event_type: str
    timestamp: int


def parse_event(req: InferRequest, now: int) -> Event:
    """Validate a V2 feedback event (user_id, item_id, event_type, timestamp)."""
    inputs = {}
    for inp in req.inputs or []:
        if inp.name not in ("user_id", "item_id", "event_type", "timestamp"):
            raise InvalidInput(f"{inp.name}: unknown input (expected user_id, item_id, event_type, timestamp)")
        inputs[inp.name] = inp

    def one_int(name: str, required: bool) -> int | None:
        if name not in inputs:
            if required:
                raise InvalidInput(f"{name}: required input is missing (INT64 [1])")
            return None
        vals = _ints(inputs[name], name)
        if len(vals) != 1:
            raise InvalidInput(f"{name}: shape must be [1], got {inputs[name].shape}")
        return vals[0]

    user_id = one_int("user_id", True)
    item_id = one_int("item_id", True)
    ts = one_int("timestamp", False)
    etype = "view"
    if "event_type" in inputs:
        e = inputs["event_type"]
        if e.datatype != "BYTES":
            raise InvalidInput(f"event_type: datatype must be BYTES, got {e.datatype}")
        vals = _values(e)
        if len(vals) != 1:
            raise InvalidInput("event_type: shape must be [1]")
        etype = vals[0].decode() if isinstance(vals[0], bytes) else str(vals[0])
        if etype not in EVENT_TYPES:
            raise InvalidInput(f"event_type: must be one of {list(EVENT_TYPES)}, got {etype!r}")
    return Event(int(user_id), int(item_id), etype, int(ts if ts is not None else now))


# ---------------------------------------------------------------------------------- responses
def _pad(rows: list[list], k: int, fill) -> list:
    return [list(r[:k]) + [fill] * (k - len(r[:k])) for r in rows]


def build_response(model_name: str, request_id: str, result: RecResult, k: int, titles: dict[int, tuple[str, str]]) -> InferResponse:
    """The recommender's V2 response: item_id, score, retrieval_score, title, genres [B, k]."""
    b = len(result.item_ids)
    ids = _pad(result.item_ids, k, -1)
    flat_ids = [i for r in ids for i in r]
    meta = [titles.get(i, ("", "")) for i in flat_ids]
    outputs = [
        InferOutput("item_id", [b, k], "INT64", data=flat_ids),
        InferOutput("score", [b, k], "FP32", data=[float(x) for r in _pad(result.scores, k, 0.0) for x in r]),
        InferOutput("retrieval_score", [b, k], "FP32", data=[float(x) for r in _pad(result.retrieval_scores, k, 0.0) for x in r]),
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
        vals = _flat(outs[name].data) if not isinstance(outs[name].data, np.ndarray) else outs[name].data.ravel().tolist()
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
