"""The transformer: validation, online features, result cache, fallbacks.

preprocess  parse/validate the V2 request, cache lookup, online-feature lookup, cold start
predict     KServe's predictor client (predictor_host, v2) -- or, collocated, the in-process
            engine -- for the users that need the models
postprocess merge, cache the fresh answers, shape the V2 response and its parameters

Every call to Redis, the online store or the predictor goes through a
:class:`~predictors.resilience.Dependency` (deadline + circuit breaker), so a dead or hung
dependency costs a request at most its deadline and then nothing while its circuit is open.
Every degraded answer carries ``fallback`` (comma-separated reasons) in the response parameters
and increments ``recommender_fallbacks_total{reason}``; dependency failures never turn into 5xx.
Feedback events are :mod:`predictors.events_model`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from kserve import Model
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

from predictors import server_metrics as m
from predictors.ab import ArmRouter
from predictors.cache import ResultCache
from predictors.context import RequestContext, cache_field
from predictors.dependency_calls import DependencyCalls
from predictors.engine import BundleMeta, Engine
from predictors.healing import OnlineStoreHealer
from predictors.predictor_model import check_bundle_dir
from predictors.protocol import (
    RECOMMENDER_INPUTS,
    RECOMMENDER_OUTPUTS,
    Limits,
    RecRequest,
    RecResult,
    build_response,
    json_param,
    parse_recommend,
    result_from_response,
)
from predictors.resilience import DependencyDown, mark_in_use, transformer_dependencies
from predictors.skew_monitor import SkewMonitor
from predictors.user_features import FeatureStoreDown
from recsys.config import Settings, get_settings

log = logging.getLogger(__name__)


class RecommenderTransformer(DependencyCalls, Model):
    """The recommender's entry point: answers what it can (cache, popularity) and asks the
    predictor (or, collocated, its own engine) for the rest."""

    def __init__(self, name: str, model_dir: str | Path | None, features_factory: Callable[[], Any],
                 cache: ResultCache | None = None, collocated: bool = False, ranker_threads: int = 1,
                 settings: Settings | None = None, event_log: Any = None, router: ArmRouter | None = None):
        super().__init__(name)
        if router is not None and collocated:
            raise ValueError("AB_EXPERIMENT: an experiment needs a predictor per arm; it cannot run --collocated")
        self.router = router
        self.settings = settings or get_settings()
        self.event_log = event_log
        self._event_client: Any = None
        self.model_dir = model_dir
        self.features_factory = features_factory
        self.features: Any = None
        self.cache = cache
        self.collocated = collocated
        self.ranker_threads = ranker_threads
        self.limits = Limits.from_settings(self.settings)
        self.deps = transformer_dependencies(self.settings)
        self.engine: Engine | None = None
        self.meta: BundleMeta | None = None
        self.healer: OnlineStoreHealer | None = None
        self.skew = SkewMonitor({})
        self._background: asyncio.Task | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    def load(self) -> bool:
        path = check_bundle_dir(self.model_dir)
        self.meta = BundleMeta(path)
        if self.collocated:
            self.engine = Engine.from_dir(path, ranker_threads=self.ranker_threads, mmr_lambda=self.settings.mmr_lambda)
            self.engine.warmup()
        self.features = self.features_factory()
        if getattr(self.features, "remote", False):
            self.healer = OnlineStoreHealer(self.features, path, self.settings.heal_interval_seconds)
        self.skew = SkewMonitor(orjson.loads((path / "feature_stats.json").read_bytes()).get("user", {}))
        used = {"redis": self.cache is not None, "feature_store": self.features_shared,
                "predictor": self.engine is None, "event_log": self.event_log is not None}
        mark_in_use([name for name, yes in used.items() if yes])
        m.set_model_info(self.meta.version, "transformer")
        log.info("transformer: model version %s, features=%s, cache=%s, collocated=%s", self.meta.version,
                 getattr(self.features, "name", "?"), bool(self.cache), self.collocated)
        self.ready = True
        return True

    @property
    def version(self) -> str:
        return self.meta.version

    @property
    def answer_version(self) -> str:
        """What a cached answer depends on: the model version, and the experiment when one runs."""
        return self.version if self.router is None else f"{self.version}+{self.router.experiment.fingerprint()}"

    def get_input_types(self) -> list[dict]:
        return RECOMMENDER_INPUTS

    def get_output_types(self) -> list[dict]:
        return RECOMMENDER_OUTPUTS

    def validate(self, payload):
        return payload

    # ---- preprocess ------------------------------------------------------------------------
    async def preprocess(self, payload: InferRequest, headers: dict | None = None) -> RequestContext:
        t0 = time.perf_counter()
        self._start_background()
        m.REQUESTS.labels("transformer", "recommender").inc()
        try:
            req = parse_recommend(payload, limits=self.limits)
        except InvalidInput:
            m.ERRORS.labels("transformer", "bad_request").inc()
            raise
        ctx = RequestContext(req, t0)
        if self.router is not None:
            ctx.variants = self.router.assign(req.user_ids)
        pending = list(range(len(req.user_ids)))
        if req.use_cache and self.cache is not None and not req.history:
            pending = await self._lookup_cache(ctx)
        if pending:
            await self._lookup_features(ctx, pending)
        return ctx

    async def _lookup_cache(self, ctx: RequestContext) -> list[int]:
        """Fill ``ctx.cached``; the positions still to answer."""
        t, req, n = time.perf_counter(), ctx.req, len(ctx.req.user_ids)
        ctx.cache_used = True
        try:
            got, ctx.cache_generations = await self.deps["redis"].call(
                lambda: self.cache.get_many(req.user_ids, cache_field(self.answer_version, req.k)))
            ctx.cached = {j: entry for j, entry in enumerate(got) if entry is not None}
            m.CACHE_REQUESTS.labels("hit").inc(len(ctx.cached))
            m.CACHE_REQUESTS.labels("miss").inc(n - len(ctx.cached))
        except DependencyDown:
            m.CACHE_REQUESTS.labels("error").inc(n)
            ctx.degrade("redis_down")
        ctx.time("cache", t)
        pending = [j for j in range(n) if j not in ctx.cached]
        ctx.cache_hit = not pending
        return pending

    async def _lookup_features(self, ctx: RequestContext, pending: list[int]) -> None:
        """Online rows of the pending users. A known user without a row, or with a row older than the
        model version's (a store restored from an old snapshot, a materialization that never ran),
        is answered from the version's own row (``feature_store_miss`` / ``feature_store_behind``)
        and the store gets refilled; an unknown user without a session history gets popularity
        (``cold_start``)."""
        t, req = time.perf_counter(), ctx.req
        try:
            ctx.rows = await self.read_rows([req.user_ids[j] for j in pending])
        except (DependencyDown, FeatureStoreDown) as exc:
            log.debug("online store: %s", exc)
            ctx.degrade("feature_store_down")
        ctx.time("feature_lookup", t)
        for j in pending:
            row = ctx.row(j)
            if row is not None and self.meta.behind(req.user_ids[j], row):
                ctx.rows[req.user_ids[j]] = row = None  # type: ignore[index]  # answered from the version's row
                ctx.degrade("feature_store_behind")
                if self.healer is not None:
                    self.healer.notify()
            if row is not None or ctx.rows is None:
                ctx.todo.append(j)  # store down: the predictor answers from the version's rows
                if row is not None:
                    self.skew.observe(row)
            elif req.user_ids[j] in self.meta.known_users:
                ctx.todo.append(j)
                ctx.degrade("feature_store_miss")
                if self.healer is not None:
                    self.healer.notify()
            elif req.history:
                ctx.todo.append(j)  # session cold start: the history is the state
            else:
                ctx.popular.add(j)
        if ctx.popular:
            ctx.degrade("cold_start")

    # ---- predict ---------------------------------------------------------------------------
    def _model_request(self, ctx: RequestContext) -> RecRequest:
        """What the models answer: the users still to do, with their online rows."""
        req = ctx.req
        return RecRequest(user_ids=[req.user_ids[j] for j in ctx.todo], k=req.k, history=req.history, use_cache=False,
                          features=[ctx.row(j) for j in ctx.todo], request_id=req.request_id)

    def _predictor_request(self, ctx: RequestContext, sub: RecRequest) -> InferRequest:
        """The same as a V2 request to the predictor (rows as JSON in the ``features`` input; an
        empty string lets the predictor use the model version's own row)."""
        req, users, rows = ctx.req, sub.user_ids, sub.features or []
        inputs = [InferInput("user_id", [len(users)], "INT64", data=users), InferInput("k", [1], "INT64", data=[req.k])]
        if req.history:
            inputs.append(InferInput("history", [1, len(req.history)], "INT64", data=list(req.history)))
        if ctx.rows is not None:
            data = [orjson.dumps(r).decode() if r else "" for r in rows]
            inputs.append(InferInput("features", [len(users)], "BYTES", data=data))
        return InferRequest(model_name=self.name, infer_inputs=inputs, request_id=req.request_id)

    async def predict(self, ctx: RequestContext, headers: dict | None = None,
                      response_headers: dict | None = None) -> RequestContext:
        if not ctx.todo:
            return ctx
        t = time.perf_counter()
        sub = self._model_request(ctx)
        if self.engine is not None:  # collocated: no hop
            ctx.model_result = self.engine.recommend(sub)
            ctx.model_result.params.pop("fallback", None)
        elif self.router is not None:
            await self.router.answer(ctx, sub, lambda part: self._predictor_request(ctx, part), self.name)
        else:
            try:
                request = self._predictor_request(ctx, sub)
                resp = await self.deps["predictor"].call(lambda: Model.predict(self, request, {}))
                ctx.model_result = result_from_response(resp)
            except DependencyDown as exc:
                log.debug("predictor: %s", exc)
                ctx.degrade("predictor_timeout" if exc.cause == "timeout" else "predictor_down")
        ctx.time("predictor_call", t)
        if ctx.model_result is None:
            ctx.popular.update(ctx.todo)
            ctx.todo = []
        return ctx

    # ---- postprocess -----------------------------------------------------------------------
    async def _merge_model_result(self, ctx: RequestContext, answers: list[Any], params: dict[str, Any]) -> None:
        """The models' answers into ``answers`` (by position), their parameters into ``params``;
        fresh full answers go to the cache."""
        r, req = ctx.model_result, ctx.req
        fresh = []
        for pos, j in enumerate(ctx.todo):
            answers[j] = (r.item_ids[pos], r.scores[pos], r.retrieval_scores[pos])
            fresh.append((req.user_ids[j], {"i": r.item_ids[pos], "s": r.scores[pos], "r": r.retrieval_scores[pos],
                                            "c": int(r.params.get("n_candidates", 0))}))
        params["n_candidates"] = int(r.params.get("n_candidates", 0))
        if r.params.get("model_version") and r.params["model_version"] != self.version:
            params["predictor_model_version"] = str(r.params["model_version"])
        lat = r.params.get("latency_ms")
        if lat:
            stages = orjson.loads(lat) if isinstance(lat, str) else lat
            ctx.timings.update({f"predictor_{k}": v for k, v in stages.items()})
        if r.params.get("fallback"):
            ctx.degrade(str(r.params["fallback"]))
        degraded = {"redis_down", "feature_store_down", "feature_store_miss", "feature_store_behind"} & set(ctx.reasons)
        if ctx.cache_used and fresh and not degraded:
            t = time.perf_counter()
            try:
                field = cache_field(self.answer_version, req.k)
                await self.deps["redis"].call(lambda: self.cache.set_many(fresh, field, ctx.cache_generations))
            except DependencyDown:
                ctx.degrade("redis_down")
            ctx.timings["cache"] = ctx.timings.get("cache", 0.0) + (time.perf_counter() - t) * 1e3

    async def postprocess(self, ctx: RequestContext, headers: dict | None = None,
                          response_headers: dict | None = None) -> InferResponse:
        req = ctx.req
        answers: list[Any] = [None] * len(req.user_ids)  # (item ids, scores, retrieval scores) per user
        for j, e in ctx.cached.items():
            answers[j] = (e["i"], e["s"], e["r"])
        for j in ctx.popular:
            ids, scores = self.meta.popularity.top(req.k, (ctx.row(j) or {}).get("seen_items") or req.history)
            answers[j] = (ids, scores, [0.0] * len(ids))
        params: dict[str, Any] = {"model_version": self.version, "request_id": req.request_id,
                                  "cache_hit": ctx.cache_hit, "n_candidates": 0}
        if ctx.model_result is not None:
            await self._merge_model_result(ctx, answers, params)
        elif ctx.cached:
            params["n_candidates"] = max(int(e.get("c", 0)) for e in ctx.cached.values())
        if ctx.reasons:
            params["fallback"] = ",".join(ctx.reasons)
            for reason in ctx.reasons:
                m.FALLBACKS.labels("transformer", reason).inc()
        ctx.timings["end_to_end"] = total = (time.perf_counter() - ctx.t0) * 1e3
        params["latency_ms"] = json_param({k: round(v, 3) for k, v in ctx.timings.items()})
        m.observe_stage("transformer", "end_to_end", total)
        if self.router is not None:
            params.update(self.router.record(ctx, total))
        if self.engine is not None and ctx.model_result is not None:
            m.observe_stage("transformer", "retrieval", ctx.timings.get("predictor_retrieval", 0.0))
            m.observe_stage("transformer", "ranking", ctx.timings.get("predictor_ranking", 0.0))
        ids, sc, rs = (list(col) for col in zip(*answers))
        return build_response(self.name, req.request_id, RecResult(ids, sc, rs, params), req.k, self.meta.titles)
