"""Prometheus metrics of both servers, defined once at module level (default registry).

KServe 0.21 serves prometheus_client's default registry on each server's HTTP port at /metrics.
Names, types and labels are a contract with helm/recommender/metrics.txt (the dashboard and the
alert rules query them); tests/deploy/test_deploy_dashboard_metrics.py checks it.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STAGES = ("feature_lookup", "cache", "predictor_call", "retrieval", "ranking", "end_to_end")
FALLBACK_REASONS = ("cold_start", "redis_down", "feature_store_down", "feature_store_miss", "feature_store_behind",
                    "predictor_down", "predictor_timeout")
CACHE_RESULTS = ("hit", "miss", "error")
DEPENDENCIES = ("redis", "feature_store", "predictor", "event_log")
CALL_OUTCOMES = ("ok", "timeout", "error", "open")

STAGE_LATENCY = Histogram(
    "recommender_stage_latency_seconds", "Latency of one serving stage, by the server that measured it",
    ["server", "stage"],
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
REQUESTS = Counter("recommender_requests", "Inference requests received", ["server", "model"])
ERRORS = Counter("recommender_errors", "Requests that failed", ["server", "kind"])
CACHE_REQUESTS = Counter("recommender_cache_requests", "Result-cache lookups", ["result"])
FALLBACKS = Counter("recommender_fallbacks", "Degraded answers by server and reason", ["server", "reason"])
FEATURE_SKEW_KL = Gauge(
    "recommender_feature_skew_kl", "KL divergence of served features vs training histograms", ["feature"]
)
MODEL_INFO = Gauge("recommender_model_info", "Model version loaded (value 1)", ["version", "server"])
REDIS_UP = Gauge("recommender_redis_up", "1 when the server reaches Redis, 0 otherwise (only servers that use it)",
                 ["server"])
DEPENDENCY_UP = Gauge("recommender_dependency_up", "1 while a dependency's circuit is closed, 0 while open or probing",
                      ["dependency"])
DEPENDENCY_CALLS = Counter("recommender_dependency_calls", "Calls to a dependency by outcome (open: not made, the "
                           "circuit was open)", ["dependency", "outcome"])
EVENTS = Counter("recommender_events", "Feedback events acknowledged, by type and where they are durable (log, spool)",
                 ["event_type", "durable"])
SPOOL_DEPTH = Gauge("recommender_event_spool_depth", "Events spooled on disk while the event log was unreachable")
AB_ANSWERS = Counter("recommender_ab_answers", "Users answered per experiment arm (kind: requests, fallbacks)",
                     ["experiment", "variant", "kind"])
AB_LATENCY = Histogram("recommender_ab_latency_seconds", "End-to-end latency of requests per experiment arm",
                       ["experiment", "variant"], buckets=STAGE_LATENCY._upper_bounds[:-1])
AB_EVENTS = Counter("recommender_ab_events", "Feedback events per experiment arm and event type",
                    ["experiment", "variant", "event_type"])
ROWS_HEALED = Counter("recommender_online_rows_healed", "User rows the online store had lost, refilled from the "
                      "model version")


# Stages and fallback reasons each server records (series exist at zero from the start).
SERVER_STAGES = {"transformer": STAGES, "predictor": ("retrieval", "ranking", "end_to_end")}
SERVER_FALLBACKS = {"transformer": FALLBACK_REASONS, "predictor": ("cold_start",)}


def observe_stage(server: str, stage: str, ms: float) -> None:
    """Record a stage latency given in milliseconds."""
    STAGE_LATENCY.labels(server, stage).observe(ms / 1e3)


def set_model_info(version: str, server: str) -> None:
    """Expose the loaded model version (one series per server; older versions removed)."""
    for labels in list(MODEL_INFO._metrics):
        if labels[1] == server and labels[0] != version:
            MODEL_INFO.remove(*labels)
    MODEL_INFO.labels(version, server).set(1)


def init_server(server: str) -> None:
    """Create this process's series at zero (``transformer`` or ``predictor``): dashboards see
    zeros before the first request, and a process never exports another server's series."""
    for stage in SERVER_STAGES[server]:
        STAGE_LATENCY.labels(server, stage)
    for reason in SERVER_FALLBACKS[server]:
        FALLBACKS.labels(server, reason)
    for kind in ("bad_request", "internal"):
        ERRORS.labels(server, kind)
    if server == "transformer":
        for result in CACHE_RESULTS:
            CACHE_REQUESTS.labels(result)
