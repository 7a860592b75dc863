"""The transformer: validation, online features, result cache, fallbacks, feedback events.

preprocess  parse/validate the V2 request, cache lookup, Feast lookup, cold start
predict     KServe's predictor client (predictor_host, v2) with a timeout -- or, collocated,
            the in-process engine -- for the users that need the models
postprocess merge, cache the fresh answers, shape the V2 response and its parameters

Every degraded answer carries ``fallback`` (comma-separated reasons) in the response
parameters and increments ``recommender_fallbacks_total{reason}``. Dependency failures never
turn into 5xx.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import orjson
from kserve import Model
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse

from predictors import metrics as m
from predictors.cache import CacheDown, ResultCache
from predictors.engine import Engine, ItemMeta
from predictors.features import FeatureStoreDown, skew_values
from predictors.predictor_model import check_bundle_dir
from predictors.protocol import (
    EVENT_INPUTS, EVENT_OUTPUTS, RECOMMENDER_INPUTS, RECOMMENDER_OUTPUTS, RecRequest, RecResult, build_response,
    json_param, parse_event, parse_recommend, result_from_response,
)
from recsys.skew import kl_divergence

log = logging.getLogger(__name__)
SKEW_WINDOW = 2000
SKEW_EVERY = 500


@dataclass
class Ctx:
    """Per-request state, passed preprocess -> predict -> postprocess (never kept on self)."""

    req: RecRequest
    t0: float
    reasons: list[str] = field(default_factory=list)
    cached: dict[int, dict] = field(default_factory=dict)  # position -> cached entry
    popular: set[int] = field(default_factory=set)  # positions answered by popularity
    todo: list[int] = field(default_factory=list)  # positions the models answer
    rows: dict[int, dict | None] | None = None
    model_result: RecResult | None = None
    timings: dict[str, float] = field(default_factory=dict)
    cache_hit: bool = False
    cache_used: bool = False

    def degrade(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)


class RecommenderTransformer(Model):
    def __init__(self, name: str, model_dir: str | Path | None, features_factory, cache: ResultCache | None = None,
                 predictor_timeout: float = 1.0, collocated: bool = False, ranker_threads: int = 1, mmr_lambda: float = 1.0):
        super().__init__(name)
        self.model_dir = model_dir
        self.features_factory = features_factory
        self.features = None
        self.cache = cache
        self.timeout = predictor_timeout
        self.collocated = collocated
        self.ranker_threads = ranker_threads
        self.mmr_lambda = mmr_lambda
        self.engine: Engine | None = None
        self.meta: ItemMeta | None = None
        self._skew_sample: collections.deque = collections.deque(maxlen=SKEW_WINDOW)
        self._skew_seen = 0
        self._user_hist: dict = {}

    # ---- lifecycle -------------------------------------------------------------------------
    def load(self) -> bool:
        path = check_bundle_dir(self.model_dir)
        self.meta = ItemMeta(path)
        if self.collocated:
            self.engine = Engine.from_dir(path, ranker_threads=self.ranker_threads, mmr_lambda=self.mmr_lambda)
            self.engine.warmup()
        self.features = self.features_factory()
        stats = orjson.loads((path / "feature_stats.json").read_bytes())
        self._user_hist = stats.get("user", {})
        if self.cache is not None:
            self.cache.ping()
        m.set_model_info(self.meta.version, "transformer")
        log.info("transformer: model version %s, features=%s, cache=%s, collocated=%s", self.meta.version,
                 getattr(self.features, "name", "?"), bool(self.cache), self.collocated)
        self.ready = True
        return True

    @property
    def version(self) -> str:
        return self.meta.version

    def get_input_types(self) -> list[dict]:
        return RECOMMENDER_INPUTS

    def get_output_types(self) -> list[dict]:
        return RECOMMENDER_OUTPUTS

    def validate(self, payload):
        return payload

    # ---- preprocess ------------------------------------------------------------------------
    async def preprocess(self, payload: InferRequest, headers: dict | None = None) -> Ctx:
        t0 = time.perf_counter()
        m.REQUESTS.labels("transformer", "recommender").inc()
        try:
            req = parse_recommend(payload)
        except InvalidInput:
            m.ERRORS.labels("transformer", "bad_request").inc()
            raise
        ctx = Ctx(req, t0)
        n = len(req.user_ids)
        pending = list(range(n))
        field_ = f"{self.version}:{req.k}"
        if req.use_cache and self.cache is not None and not req.history:
            t = time.perf_counter()
            ctx.cache_used = True
            try:
                got = self.cache.get_many(req.user_ids, field_)
                for j, entry in enumerate(got):
                    if entry is not None:
                        ctx.cached[j] = entry
                m.CACHE_REQUESTS.labels("hit").inc(len(ctx.cached))
                m.CACHE_REQUESTS.labels("miss").inc(n - len(ctx.cached))
            except CacheDown:
                m.CACHE_REQUESTS.labels("error").inc(n)
                ctx.degrade("redis_down")
            ctx.timings["cache"] = (time.perf_counter() - t) * 1e3
            m.observe_stage("cache", ctx.timings["cache"])
            pending = [j for j in pending if j not in ctx.cached]
            ctx.cache_hit = not pending
        if pending:
            t = time.perf_counter()
            ids = [req.user_ids[j] for j in pending]
            try:
                ctx.rows = self.features.get(ids)
            except FeatureStoreDown as exc:
                log.warning("feature store down: %s", exc)
                ctx.degrade("feature_store_down")
            ctx.timings["feature_lookup"] = (time.perf_counter() - t) * 1e3
            m.observe_stage("feature_lookup", ctx.timings["feature_lookup"])
            for j in pending:
                row = ctx.rows.get(req.user_ids[j]) if ctx.rows is not None else None
                if ctx.rows is not None and row is None and not req.history:
                    ctx.popular.add(j)  # unknown user, nothing to embed: cold start
                else:
                    ctx.todo.append(j)
                    if row is not None:
                        self._observe_skew(row)
            if ctx.popular:
                ctx.degrade("cold_start")
        return ctx

    def _observe_skew(self, row: dict) -> None:
        self._skew_sample.append(skew_values(row))
        self._skew_seen += 1
        if self._skew_seen % SKEW_EVERY == 0 and self._user_hist:
            sample = list(self._skew_sample)
            for name, hist in self._user_hist.items():
                m.FEATURE_SKEW_KL.labels(name).set(kl_divergence(hist, [s[name] for s in sample if name in s]))

    # ---- predict ---------------------------------------------------------------------------
    def _model_request(self, ctx: Ctx) -> RecRequest:
        """What the models answer: the users still to do, with their online rows."""
        req = ctx.req
        users = [req.user_ids[j] for j in ctx.todo]
        rows = [ctx.rows.get(u) if ctx.rows is not None else None for u in users]
        return RecRequest(user_ids=users, k=req.k, history=req.history, use_cache=False, features=rows, request_id=req.request_id)

    def _predictor_request(self, ctx: Ctx, sub: RecRequest) -> InferRequest:
        """The same as a V2 request to the predictor (rows as JSON in the ``features`` input)."""
        req, users, rows = ctx.req, sub.user_ids, sub.features
        inputs = [InferInput("user_id", [len(users)], "INT64", data=users), InferInput("k", [1], "INT64", data=[req.k])]
        if req.history:
            inputs.append(InferInput("history", [1, len(req.history)], "INT64", data=list(req.history)))
        if ctx.rows is not None:
            inputs.append(InferInput("features", [len(users)], "BYTES", data=[orjson.dumps(r).decode() if r else "" for r in rows]))
        return InferRequest(model_name=self.name, infer_inputs=inputs, request_id=req.request_id)

    async def predict(self, ctx: Ctx, headers: dict | None = None, response_headers: dict | None = None) -> Ctx:
        if not ctx.todo:
            return ctx
        t = time.perf_counter()
        sub = self._model_request(ctx)
        try:
            if self.engine is not None:  # collocated: no hop
                ctx.model_result = self.engine.recommend(sub)
                ctx.model_result.params.pop("fallback", None)
            else:
                resp = await asyncio.wait_for(Model.predict(self, self._predictor_request(ctx, sub), {}), self.timeout)
                ctx.model_result = result_from_response(resp)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            ctx.degrade("predictor_timeout")
        except (httpx.HTTPError, grpc.RpcError, OSError, RuntimeError, ValueError, KeyError) as exc:
            log.warning("predictor call failed: %r", exc)
            ctx.degrade("predictor_down")
        ctx.timings["predictor_call"] = (time.perf_counter() - t) * 1e3
        m.observe_stage("predictor_call", ctx.timings["predictor_call"])
        if ctx.model_result is None:
            ctx.popular.update(ctx.todo)
            ctx.todo = []
        return ctx

    # ---- postprocess -----------------------------------------------------------------------
    async def postprocess(self, ctx: Ctx, headers: dict | None = None, response_headers: dict | None = None) -> InferResponse:
        req = ctx.req
        n = len(req.user_ids)
        ids, sc, rs = [None] * n, [None] * n, [None] * n
        for j, e in ctx.cached.items():
            ids[j], sc[j], rs[j] = e["i"], e["s"], e["r"]
        for j in ctx.popular:
            row = ctx.rows.get(req.user_ids[j]) if ctx.rows else None
            ids[j], sc[j] = self.meta.popularity.top(req.k, (row or {}).get("seen_items") or req.history)
            rs[j] = [0.0] * len(ids[j])
        params = {"model_version": self.version, "cache_hit": ctx.cache_hit, "n_candidates": 0}
        if ctx.model_result is not None:
            r = ctx.model_result
            fresh = []
            for pos, j in enumerate(ctx.todo):
                ids[j], sc[j], rs[j] = r.item_ids[pos], r.scores[pos], r.retrieval_scores[pos]
                fresh.append((req.user_ids[j], {"i": ids[j], "s": sc[j], "r": rs[j], "c": int(r.params.get("n_candidates", 0))}))
            params["n_candidates"] = int(r.params.get("n_candidates", 0))
            if r.params.get("model_version") and r.params["model_version"] != self.version:
                params["predictor_model_version"] = str(r.params["model_version"])
            lat = r.params.get("latency_ms")
            if lat:
                ctx.timings.update({f"predictor_{k}": v for k, v in (orjson.loads(lat) if isinstance(lat, str) else lat).items()})
            if r.params.get("fallback"):
                ctx.degrade(str(r.params["fallback"]))
            if ctx.cache_used and fresh and "redis_down" not in ctx.reasons and "feature_store_down" not in ctx.reasons:
                t = time.perf_counter()
                try:
                    self.cache.set_many(fresh, f"{self.version}:{req.k}")
                except CacheDown:
                    ctx.degrade("redis_down")
                ctx.timings["cache"] = ctx.timings.get("cache", 0.0) + (time.perf_counter() - t) * 1e3
        elif ctx.cached:
            params["n_candidates"] = max(int(e.get("c", 0)) for e in ctx.cached.values())
        if ctx.reasons:
            params["fallback"] = ",".join(ctx.reasons)
            for reason in ctx.reasons:
                m.FALLBACKS.labels(reason).inc()
        total = (time.perf_counter() - ctx.t0) * 1e3
        ctx.timings["end_to_end"] = total
        params["latency_ms"] = json_param({k: round(v, 3) for k, v in ctx.timings.items()})
        m.observe_stage("end_to_end", total)
        if self.engine is not None and ctx.model_result is not None:
            m.observe_stage("retrieval", ctx.timings.get("predictor_retrieval", 0.0))
            m.observe_stage("ranking", ctx.timings.get("predictor_ranking", 0.0))
        return build_response(self.name, req.request_id, RecResult(ids, sc, rs, params), req.k, self.meta.titles)


class EventsModel(Model):
    """``events``: V2 infer with user_id, item_id[, event_type, timestamp] -> history updated, cache invalidated."""

    def __init__(self, name: str, transformer: RecommenderTransformer):
        super().__init__(name)
        self.t = transformer

    def load(self) -> bool:
        self.ready = True
        return True

    def get_input_types(self) -> list[dict]:
        return EVENT_INPUTS

    def get_output_types(self) -> list[dict]:
        return EVENT_OUTPUTS

    def validate(self, payload):
        return payload

    async def predict(self, payload: InferRequest, headers: dict | None = None, response_headers: dict | None = None) -> InferResponse:
        m.REQUESTS.labels("transformer", "events").inc()
        try:
            ev = parse_event(payload, int(time.time()))
        except InvalidInput:
            m.ERRORS.labels("transformer", "bad_request").inc()
            raise
        reasons, accepted, hist_len = [], True, 0
        try:
            row = self.t.features.append(ev.user_id, ev.item_id, ev.timestamp)
            hist_len = len(row.get("recent_items") or [])
        except FeatureStoreDown as exc:
            log.warning("event not stored: %s", exc)
            reasons.append("feature_store_down")
            accepted = False
        if self.t.cache is not None:
            try:
                self.t.cache.invalidate(ev.user_id)
            except CacheDown:
                reasons.append("redis_down")
        params = {"model_version": self.t.version, "event_type": ev.event_type}
        if reasons:
            params["fallback"] = ",".join(reasons)
            for r in reasons:
                m.FALLBACKS.labels(r).inc()
        outs = [InferOutput("accepted", [1], "BOOL", data=[accepted]), InferOutput("history_len", [1], "INT64", data=[hist_len])]
        return InferResponse(response_id=str(payload.id or "event"), model_name=self.name, infer_outputs=outs, parameters=params)
