"""Per-user A/B routing in the transformer: each arm's users go to that arm's predictor.

:class:`ArmRouter` holds, per arm of the experiment (:mod:`recsys.online.experiment`), a KServe
REST client for its ``predictor_host`` behind its own :class:`~predictors.resilience.Dependency`
(deadline + circuit breaker, ``dependency="predictor:<arm>"``): one arm's predictor down
degrades that arm's users to popularity (``predictor_down``) and nothing else. The arms are
asked concurrently; their answers come back in the request's order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from kserve.inference_client import RESTConfig
from kserve.protocol.infer_type import InferRequest
from kserve.utils.inference_client_factory import InferenceClientFactory

from predictors import server_metrics as m
from predictors.context import RequestContext
from predictors.protocol import RecRequest, RecResult, result_from_response
from predictors.resilience import CircuitBreaker, Dependency, DependencyDown
from recsys.online.experiment import Experiment

log = logging.getLogger(__name__)
Answer = tuple[list[int], list[float], list[float]]  # item ids, scores, retrieval scores of one user


class ArmRouter:
    """Clients and circuits of the experiment's arms."""

    def __init__(self, experiment: Experiment, versions: dict[str, str], settings: Any):
        self.experiment = experiment
        self.versions = versions  # arm name -> registry model version
        self.deps: dict[str, Dependency] = {}
        self._clients: dict[str, Any] = {}
        self._timeout = settings.predictor_timeout_seconds
        for arm in experiment.arms:
            name = f"predictor:{arm.name}"

            def on_call(dep: str, outcome: str) -> None:
                m.DEPENDENCY_CALLS.labels(dep, outcome).inc()
                if outcome != "open":
                    m.DEPENDENCY_UP.labels(dep).set(1 if outcome == "ok" else 0)

            self.deps[arm.name] = Dependency(name, settings.predictor_timeout_seconds, CircuitBreaker(
                name, settings.circuit_failure_threshold, settings.circuit_open_seconds), on_call=on_call)
            for kind in ("requests", "fallbacks"):
                m.AB_ANSWERS.labels(experiment.id, arm.name, kind)  # zeros before the first request

    def assign(self, user_ids: list[int]) -> list[str]:
        return [self.experiment.assign(u).name for u in user_ids]

    def _client(self, arm: str) -> Any:
        if arm not in self._clients:
            self._clients[arm] = InferenceClientFactory().get_rest_client(
                config=RESTConfig(protocol="v2", timeout=max(1, int(round(self._timeout))), retries=0))
        return self._clients[arm]

    async def _ask(self, arm: str, request: InferRequest, model_name: str) -> RecResult:
        host = next(a.predictor_host for a in self.experiment.arms if a.name == arm)
        base = host if "://" in host else f"http://{host}"
        resp = await self.deps[arm].call(lambda: self._client(arm).infer(base, data=request, model_name=model_name))
        return result_from_response(resp)

    async def predict(self, sub: RecRequest, variants: list[str], to_request: Callable[[RecRequest], InferRequest],
                      model_name: str) -> tuple[list[Answer | None], dict, list[tuple[str, str]]]:
        """Answers for ``sub``'s users (None where the arm failed), merged parameters and the
        degradation reasons, each with its arm."""
        by_arm: dict[str, list[int]] = {}
        for pos, arm in enumerate(variants):
            by_arm.setdefault(arm, []).append(pos)
        arms = list(by_arm)

        def part(positions: list[int]) -> RecRequest:
            rows = sub.features
            return RecRequest(user_ids=[sub.user_ids[p] for p in positions], k=sub.k, history=sub.history,
                              use_cache=False, features=[rows[p] for p in positions] if rows is not None else None,
                              request_id=sub.request_id)

        results = await asyncio.gather(*(self._ask(a, to_request(part(by_arm[a])), model_name) for a in arms),
                                       return_exceptions=True)
        answers: list[Answer | None] = [None] * len(variants)
        params: dict[str, Any] = {"n_candidates": 0}
        reasons: list[tuple[str, str]] = []
        for arm, res in zip(arms, results):
            if isinstance(res, DependencyDown):
                reasons.append((arm, "predictor_timeout" if res.cause == "timeout" else "predictor_down"))
                continue
            if isinstance(res, BaseException):
                raise res
            for i, pos in enumerate(by_arm[arm]):
                answers[pos] = (res.item_ids[i], res.scores[i], res.retrieval_scores[i])
            params["n_candidates"] = max(params["n_candidates"], int(res.params.get("n_candidates", 0)))
            if res.params.get("fallback"):
                reasons.append((arm, str(res.params["fallback"])))
        return answers, params, reasons

    async def answer(self, ctx: RequestContext, sub: RecRequest, to_request: Callable[[RecRequest], InferRequest],
                     model_name: str) -> None:
        """``ctx.model_result`` from each user's arm; users of a failed arm move to popularity."""
        assert ctx.variants is not None
        answers, params, reasons = await self.predict(sub, [ctx.variants[j] for j in ctx.todo], to_request,
                                                      model_name)
        for arm, reason in reasons:
            ctx.degrade(reason)
            ctx.arm_reasons.setdefault(arm, set()).add(reason)
        ok = [i for i, a in enumerate(answers) if a is not None]
        ctx.popular.update(ctx.todo[i] for i, a in enumerate(answers) if a is None)
        ctx.todo = [ctx.todo[i] for i in ok]
        if ok:
            got = [a for a in answers if a is not None]
            ctx.model_result = RecResult([a[0] for a in got], [a[1] for a in got], [a[2] for a in got], params)

    def record(self, ctx: RequestContext, total_ms: float) -> dict[str, Any]:
        """Per-arm metrics of one answered request; the response's ``variant`` / ``experiment`` parameters."""
        if ctx.variants is None:
            return {}
        exp = self.experiment.id
        # a user's answer is a fallback when it is popularity, its arm's predictor answer was
        # degraded, or the whole request was (the cache, the feature store); not when only
        # another arm of the same request failed
        from_arms = set().union(*ctx.arm_reasons.values())
        whole_request = any(r not in from_arms for r in ctx.reasons)
        for j, arm in enumerate(ctx.variants):
            m.AB_ANSWERS.labels(exp, arm, "requests").inc()
            if j in ctx.popular or arm in ctx.arm_reasons or whole_request:
                m.AB_ANSWERS.labels(exp, arm, "fallbacks").inc()
        for arm in set(ctx.variants):
            m.AB_LATENCY.labels(exp, arm).observe(total_ms / 1e3)
        return {"variant": ",".join(ctx.variants), "experiment": exp}
