"""``events``: V2 infer with one feedback event -> acknowledged once it is durable.

The event (:class:`recsys.online.events.Event`: user_id, item_id, event_type, timestamp,
event_id, value, progress, session_id, position, request_id, variant) is validated (400 naming
the field), then written to the event log under its deadline; when the log does not answer it is
spooled on disk instead, and when the spool is full the answer is 503 with Retry-After. The
stream consumer applies logged events to the online features and archives them; with the
in-memory ``bundle`` feature source (no shared store) the transformer applies the event itself.
The user's cached answers are dropped either way.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi.responses import ORJSONResponse
from kserve import Model
from kserve.errors import InvalidInput, ServerNotReady
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse

from predictors import server_metrics as m
from predictors.protocol import EVENT_INPUTS, EVENT_OUTPUTS, Limits
from predictors.resilience import CircuitBreaker, Dependency, DependencyDown
from predictors.spool import EventSpool, SpoolDrainer, SpoolFull
from predictors.tensors import check_layout, check_numel, ints, shape_of, values
from recsys.online.events import Event, EventError, parse_event_fields

if TYPE_CHECKING:
    from predictors.transformer_model import RecommenderTransformer

log = logging.getLogger(__name__)
# What a refused client is told to wait (Retry-After): the spool's drainer tries the log every
# predictors.spool.DRAIN_EVERY_SECONDS, so once the log answers the spool has room again well within it.
RETRY_AFTER_SECONDS = 5
REFUSAL_LOG_EVERY_SECONDS = 10.0  # one warning per this many seconds while events are refused
INT_FIELDS = ("user_id", "item_id", "timestamp", "position")
FLOAT_FIELDS = ("value", "progress")
FLOAT_TYPES = ("FP64", "FP32", "FP16", "INT64", "INT32")  # a rating may come as INT64 [4]
TEXT_FIELDS = ("event_type", "event_id", "session_id", "request_id", "variant")


class EventLogUnavailable(ServerNotReady):
    """Neither the event log nor the spool can take the event. REST: 503 with ``Retry-After`` and
    ``{"error": ...}`` (:func:`install_refusal_handling`); gRPC: UNAVAILABLE with the same message
    (KServe's interceptor maps ServerNotReady to it and sends ``reason``)."""

    def __init__(self, detail: str, retry_after: int = RETRY_AFTER_SECONDS):
        super().__init__(detail)
        self.reason, self.retry_after = detail, retry_after


async def _refusal_response(_request: Any, exc: EventLogUnavailable) -> ORJSONResponse:
    return ORJSONResponse(status_code=503, headers={"Retry-After": str(exc.retry_after)},
                          content={"error": exc.reason, "retry_after_seconds": exc.retry_after})


class _NoRefusalTracebacks(logging.Filter):
    """KServe's gRPC interceptor logs every ServerNotReady at ERROR with a traceback; a refused
    event is an expected answer, logged (throttled) by :meth:`EventsModel._refuse` instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], EventLogUnavailable))


def install_refusal_handling(app: Any = None) -> None:
    """On KServe's FastAPI app, the 503 + Retry-After handler for refused events, in place of
    KServe's ServerNotReady handler (plain 503, "Server is not ready", an ERROR traceback); on
    KServe's logger, the filter of the gRPC interceptor's tracebacks. Before the server starts:
    Starlette copies the handlers into the middleware it builds on the app's first call (uvicorn's
    startup). Idempotent."""
    if app is None:
        from kserve import model_server

        app = model_server.app
    if EventLogUnavailable not in app.exception_handlers:
        app.add_exception_handler(EventLogUnavailable, _refusal_response)
    kserve_logger = logging.getLogger("kserve")
    if not any(isinstance(f, _NoRefusalTracebacks) for f in kserve_logger.filters):
        kserve_logger.addFilter(_NoRefusalTracebacks())


def _scalars(inp: InferInput, name: str) -> list[Any]:
    """The input's values, typed as its field: INT64 (range-checked), FP64 or BYTES (UTF-8 text)."""
    if name in INT_FIELDS:
        return list(ints(inp, name))
    if name in FLOAT_FIELDS:
        if inp.datatype not in FLOAT_TYPES:
            raise InvalidInput(f"{name}: datatype must be FP64, got {inp.datatype}")
        vals = values(inp)
        bad = [v for v in vals if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number))]
        if bad:
            raise InvalidInput(f"{name}: values must be numbers, got {bad[0]!r}")
        return [float(v) for v in vals]
    if inp.datatype != "BYTES":
        raise InvalidInput(f"{name}: datatype must be BYTES, got {inp.datatype}")
    out = []
    for v in values(inp):
        if not isinstance(v, (bytes, str)):
            raise InvalidInput(f"{name}: values must be strings, got {v!r}")
        try:
            out.append(v.decode() if isinstance(v, bytes) else v)
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{name}: not UTF-8 text ({exc})") from exc
    return out


def _one(inp: InferInput, name: str) -> Any:
    """The one value of an event input: shape exactly [1], data flat or nested as [1], one scalar
    (the recommend inputs' checks from :mod:`predictors.tensors`)."""
    shape = shape_of(inp)
    if shape != [1]:
        raise InvalidInput(f"{name}: shape must be [1] (one value per event), got {shape}")
    check_layout(inp, name, shape)
    vals = _scalars(inp, name)
    check_numel(name, vals, shape)
    return vals[0]


def parse_event(req: InferRequest, now: int, limits: Limits) -> Event:
    """Validate a V2 feedback event; every mistake is InvalidInput naming the field."""
    known = INT_FIELDS + FLOAT_FIELDS + TEXT_FIELDS
    fields: dict[str, Any] = {}
    for inp in req.inputs or []:
        if inp.name not in known:
            raise InvalidInput(f"{inp.name}: unknown input (expected {', '.join(known)})")
        if inp.name in fields:
            raise InvalidInput(f"{inp.name}: given more than once")
        fields[inp.name] = _one(inp, inp.name)
    for name in ("user_id", "item_id"):
        if name not in fields:
            raise InvalidInput(f"{name}: required input is missing (INT64 [1])")
    ts = fields.setdefault("timestamp", now)
    if ts > now + limits.event_max_future or ts < now - limits.event_max_past:
        raise InvalidInput(f"timestamp: {ts} ({limits.describe(ts)}) is not within {limits.event_max_past} s before "
                           f"to {limits.event_max_future} s after now (epoch seconds)")
    try:
        return parse_event_fields(fields)
    except EventError as exc:
        raise InvalidInput(str(exc)) from exc


class EventsModel(Model):
    """Feedback events, served by the transformer next to the recommender (same log, same cache)."""

    def __init__(self, name: str, transformer: RecommenderTransformer, spool: EventSpool | None = None):
        super().__init__(name)
        self.transformer = transformer
        self.spool = spool
        self._drainer = (SpoolDrainer(spool, transformer.event_log.append, on_depth=m.SPOOL_DEPTH.set)
                         if spool is not None and transformer.event_log is not None else None)
        self._refused_logged_at = float("-inf")
        # The spool is local disk: its own thread pool and deadline, never the log's open circuit.
        self._disk = Dependency("spool", 5.0, CircuitBreaker("spool", failure_threshold=1_000_000, open_seconds=0.0))
        install_refusal_handling()

    def load(self) -> bool:
        """Ready; a spool left by an earlier process (a crash, a restart while the log was down)
        starts replaying at once, not only when the next event is spooled."""
        if self.spool is not None and self.spool.depth():
            log.warning("%d events left in the spool %s: replaying them into the event log", self.spool.depth(),
                        self.spool.path)
            m.SPOOL_DEPTH.set(self.spool.depth())
            if self._drainer is not None:
                self._drainer.start()
        self.ready = True
        return True

    def get_input_types(self) -> list[dict]:
        return EVENT_INPUTS

    def get_output_types(self) -> list[dict]:
        return EVENT_OUTPUTS

    def validate(self, payload):
        return payload

    def _refuse(self, detail: str) -> EventLogUnavailable:
        """The 503 for an event neither the log nor the spool took (a warning every
        REFUSAL_LOG_EVERY_SECONDS while it lasts, no traceback)."""
        now = time.monotonic()
        if now - self._refused_logged_at >= REFUSAL_LOG_EVERY_SECONDS:
            self._refused_logged_at = now
            log.warning("events refused (503, Retry-After %d s): %s", RETRY_AFTER_SECONDS, detail)
        return EventLogUnavailable(f"{detail}; retry after {RETRY_AFTER_SECONDS} s")

    async def _log(self, event: Event) -> str:
        """Durable: in the log, or in the spool when the log does not answer. Returns where."""
        try:
            await self.transformer.append_event(event)
            return "log"
        except DependencyDown as exc:
            down = f"event log unavailable ({exc})"
        if self.spool is None:
            raise self._refuse(f"{down} and no spool")
        try:
            await self._disk.run(self.spool.append, event)
        except DependencyDown as exc:  # the spool's failure is the cause (run wraps it)
            if isinstance(exc.__cause__, SpoolFull):
                raise self._refuse(f"{down} and {exc.__cause__}") from exc
            raise self._refuse(f"{down} and event spool not writable ({exc})") from exc
        if self._drainer is not None:
            self._drainer.start()
        return "spool"

    def _check_variant(self, event: Event) -> None:
        """With an experiment running, an event's variant must be one of its arms (400 otherwise)."""
        router = self.transformer.router
        if router is None or event.variant is None:
            return
        exp = router.experiment
        if event.variant not in exp.arm_names():
            m.ERRORS.labels("transformer", "bad_request").inc()
            raise InvalidInput(f"variant: {event.variant!r} is not an arm of experiment {exp.id!r} "
                               f"({', '.join(exp.arm_names())})")
        m.AB_EVENTS.labels(exp.id, event.variant, event.event_type).inc()

    async def predict(self, payload: InferRequest, headers: dict | None = None,
                      response_headers: dict | None = None) -> InferResponse:
        m.REQUESTS.labels("transformer", "events").inc()
        t = self.transformer
        try:
            event = parse_event(payload, int(time.time()), t.limits)
        except InvalidInput:
            m.ERRORS.labels("transformer", "bad_request").inc()
            raise
        self._check_variant(event)
        durable = await self._log(event)
        m.EVENTS.labels(event.event_type, durable).inc()
        if durable == "spool":
            m.SPOOL_DEPTH.set(self.spool.depth())
        params: dict = {"model_version": t.version, "event_type": event.event_type, "durable": durable}
        if not t.features_shared:
            t.features.apply(event)  # in-memory rows: no consumer sees them, apply here
        if t.cache is not None and event.event_type != "impression":  # an impression changes no answer
            try:
                await t.deps["redis"].call(lambda: t.cache.invalidate(event.user_id))
            except DependencyDown:
                params["fallback"] = "redis_down"
                m.FALLBACKS.labels("transformer", "redis_down").inc()
        if event.item_id not in t.meta.known_items:
            params["unknown_item"] = True  # accepted (a new item may enter the next model version), flagged
        outs = [InferOutput("accepted", [1], "BOOL", data=[True]),
                InferOutput("event_id", [1], "BYTES", data=[event.event_id])]
        return InferResponse(response_id=str(payload.id or event.event_id), model_name=self.name, infer_outputs=outs,
                             parameters=params)
