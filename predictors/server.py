"""Shared server set-up: client mistakes KServe/FastAPI would answer with 422 become 400 with a
message naming the field (garbage JSON, ``inputs`` not a list, missing ``name``...); request
bodies over MAX_REQUEST_BYTES get 413 (REST) / RESOURCE_EXHAUSTED (gRPC); the per-request log
lines are optional (``--request_logs``); expected start-up failures end in one line and exit 2."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse

from predictors import server_metrics as m


def describe_validation_error(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "InferenceRequest")]
        if loc and loc[0] == "bytes":
            continue  # the alternative "raw bytes body" branch of KServe's union: not informative
        if err.get("type") == "json_invalid":
            reason = err.get("ctx", {}).get("error", err.get("msg"))
            parts.append(f"body: not valid JSON ({reason} at position {loc[0] if loc else '?'})")
        else:
            parts.append(f"{'.'.join(loc) or 'body'}: {err.get('msg')}")
    return "; ".join(parts) or "invalid request body"


class BodySizeLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 naming the limit,
    from its Content-Length or, for a body sent without one, after reading at most ``limit`` + 1
    bytes of it (then replayed to the app when it fits)."""

    def __init__(self, app: Any, limit: int, server: str):
        self.app, self.limit, self.server = app, limit, server

    async def _reject(self, send: Callable, size: str) -> None:
        m.ERRORS.labels(self.server, "bad_request").inc()
        body = ORJSONResponse(status_code=413, content={
            "error": f"body: {size} exceeds the limit of {self.limit} bytes (MAX_REQUEST_BYTES)"}).body
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > self.limit:
                await self._reject(send, f"{int(length)} bytes")
                return
            await self.app(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more and size <= self.limit:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # a disconnect: let the app see it
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
        if size > self.limit:
            await self._reject(send, f"more than {self.limit} bytes")
            return
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def buffered() -> dict:
            return replay.pop() if replay else await receive()

        await self.app(scope, buffered, send)


def install_error_handlers(server: str, max_request_bytes: int) -> None:
    """On KServe's FastAPI app and gRPC server (before ModelServer.start): the 400 handler and the
    request size limit."""
    from kserve import model_server

    async def handler(_request, exc: RequestValidationError):
        m.ERRORS.labels(server, "bad_request").inc()
        return ORJSONResponse(status_code=400, content={"error": describe_validation_error(exc)})

    model_server.app.add_exception_handler(RequestValidationError, handler)
    model_server.app.add_middleware(BodySizeLimit, limit=max_request_bytes, server=server)
    # KServe's gRPC server reads its message limits from the parsed command line.
    model_server.args.grpc_max_receive_message_length = max_request_bytes


def exit_with(message: str, code: int = 2) -> NoReturn:
    """An expected failure (no model, a corrupt bundle, bad configuration): one line, no traceback."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


class _DropGrpcMethodLines(logging.Filter):
    """KServe's gRPC LoggingInterceptor logs ``grpc method: ...`` at INFO for every call."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("grpc method:")


def add_request_logs_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--request_logs",
        type=lambda v: str(v).lower() in ("1", "true", "yes", "on"),
        default=False,
        help="Per-request log lines (uvicorn access line, KServe's latency and timing lines, gRPC method "
        "line): true = KServe's defaults; default false: /metrics carries the same counts and latencies",
    )


def add_trending_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trending", choices=("feast", "off"), default="feast",
                        help="feast: the ranker reads the stream consumer's trending counts from the online store "
                             "(refreshed in the background); off: zeros (no stream)")


def configure_logging(level: str, request_logs: bool) -> None:
    """Call after ``ModelServer()`` (which configures logging) and before ``start``: the root and
    KServe loggers at ``level`` (LOG_LEVEL). Request logs off: the access/trace loggers keep
    WARNING and above, and the gRPC method lines are dropped."""
    logging.getLogger().setLevel(level)
    logging.getLogger("kserve").setLevel(level)
    if request_logs:
        return
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    kserve_logger = logging.getLogger("kserve")
    if not any(isinstance(f, _DropGrpcMethodLines) for f in kserve_logger.filters):
        kserve_logger.addFilter(_DropGrpcMethodLines())


def freeze_loaded_heap() -> int:
    """After the models are loaded: move every object alive now out of the garbage collector's
    reach (``gc.freeze``). The bundle's user table alone is hundreds of thousands of tracked
    objects; a full collection over them is a latency spike each time one runs mid-request
    (docs/serving.md). Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    n = gc.get_freeze_count()
    logging.getLogger("predictors").info("gc: %d objects loaded at start-up frozen (out of collections)", n)
    return n


def settings_or_exit() -> Any:
    """The settings from the environment, or one line naming the bad variable and exit 2."""
    from pydantic import ValidationError

    from recsys.config import describe_settings_error, get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        exit_with(describe_settings_error(exc))


def router_or_exit(settings: Any, collocated: bool) -> Any:
    """The A/B router of ``AB_EXPERIMENT`` (None when unset); a bad experiment -> one line, exit 2."""
    if not settings.ab_experiment:
        return None
    from predictors.ab import ArmRouter
    from recsys.online.experiment import ExperimentError, parse_experiment, resolve_arm_versions

    try:
        exp = parse_experiment(settings.ab_experiment)
        if collocated:
            raise ExperimentError("AB_EXPERIMENT: an experiment needs a predictor per arm; it cannot run --collocated")
        versions = resolve_arm_versions(exp, settings)
    except ExperimentError as exc:
        exit_with(str(exc))
    arms = ", ".join(f"{a.name}={a.model} (v{versions[a.name]}, {a.share:g}) -> {a.predictor_host}" for a in exp.arms)
    logging.getLogger("predictors").info("experiment %s: %s", exp.id, arms)
    return ArmRouter(exp, versions, settings)


def model_dir_or_exit(model_dir: str | None, model_uri: str | None) -> str | None:
    """``--model_dir`` or the bundle ``--model_uri`` resolves to; no such model -> one line, exit 2."""
    from recsys.artifacts.bundle import BundleError
    from recsys.artifacts.registry import ModelNotFound, resolve_model_dir

    try:
        return resolve_model_dir(model_dir, model_uri)
    except (ModelNotFound, BundleError, ValueError) as exc:
        exit_with(str(exc))


def load_or_exit(model: Any) -> None:
    """``model.load()``; a missing or corrupt bundle, or a bad feature repo -> one line, exit 2."""
    from kserve.errors import ModelMissingError

    from recsys.artifacts.bundle import BundleError
    from recsys.online.feature_store import FeatureStoreError

    try:
        model.load()
    except (ModelMissingError, BundleError, FeatureStoreError, FileNotFoundError) as exc:
        exit_with(f"{model.name}: {exc}")
