"""Shared server set-up: client mistakes KServe/FastAPI would answer with 422 become 400 with a
message naming the field (garbage JSON, ``inputs`` not a list, missing ``name``...); the
per-request log lines are optional (``--request_logs``)."""

from __future__ import annotations

import argparse
import gc
import logging

from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse

from predictors import metrics as m


def describe_validation_error(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "InferenceRequest")]
        if loc and loc[0] == "bytes":
            continue  # the alternative "raw bytes body" branch of KServe's union: not informative
        if err.get("type") == "json_invalid":
            parts.append(f"body: not valid JSON ({err.get('ctx', {}).get('error', err.get('msg'))} at position {loc[0] if loc else '?'})")
        else:
            parts.append(f"{'.'.join(loc) or 'body'}: {err.get('msg')}")
    return "; ".join(parts) or "invalid request body"


def install_error_handlers(server: str) -> None:
    """Register the 400 handler on KServe's FastAPI app (before ModelServer.start)."""
    from kserve import model_server

    async def handler(_request, exc: RequestValidationError):
        m.ERRORS.labels(server, "bad_request").inc()
        return ORJSONResponse(status_code=400, content={"error": describe_validation_error(exc)})

    model_server.app.add_exception_handler(RequestValidationError, handler)


class _DropGrpcMethodLines(logging.Filter):
    """KServe's gRPC LoggingInterceptor logs ``grpc method: ...`` at INFO for every call."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("grpc method:")


def add_request_logs_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--request_logs", type=lambda v: str(v).lower() in ("1", "true", "yes", "on"), default=False,
                        help="Per-request log lines (uvicorn access line, KServe's latency and timing lines, gRPC method "
                             "line): true = KServe's defaults; default false: /metrics carries the same counts and latencies")


def configure_request_logs(enabled: bool) -> None:
    """Call after ``ModelServer()`` (which configures logging) and before ``start``. Off: the
    access/trace loggers keep WARNING and above, and the gRPC method lines are dropped."""
    if enabled:
        return
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    kserve_logger = logging.getLogger("kserve")
    if not any(isinstance(f, _DropGrpcMethodLines) for f in kserve_logger.filters):
        kserve_logger.addFilter(_DropGrpcMethodLines())


def freeze_loaded_heap() -> int:
    """After the models are loaded: move every object alive now out of the garbage collector's
    reach (``gc.freeze``). The bundle's user table alone is ~400k tracked objects here; a full
    collection over them takes ~165 ms, a latency spike each time one runs mid-request. Returns
    how many objects were frozen."""
    gc.collect()
    gc.freeze()
    n = gc.get_freeze_count()
    logging.getLogger("predictors").info("gc: %d objects loaded at start-up frozen (out of collections)", n)
    return n
