"""Per-request state of the transformer, passed preprocess -> predict -> postprocess."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from predictors import server_metrics as m
from predictors.protocol import RecRequest, RecResult


@dataclass
class RequestContext:
    """Per-request state, passed preprocess -> predict -> postprocess (never kept on self)."""

    req: RecRequest
    t0: float
    reasons: list[str] = field(default_factory=list)
    cached: dict[int, dict] = field(default_factory=dict)  # position -> cached entry
    cache_generations: dict[int, str] = field(default_factory=dict)  # user id -> cache generation read
    popular: set[int] = field(default_factory=set)  # positions answered by popularity
    todo: list[int] = field(default_factory=list)  # positions the models answer
    rows: dict[int, dict | None] | None = None  # online rows by user id (None: the store was down)
    model_result: RecResult | None = None
    timings: dict[str, float] = field(default_factory=dict)
    cache_hit: bool = False
    cache_used: bool = False
    variants: list[str] | None = None  # the experiment arm of each user (None: no experiment)
    arm_reasons: dict[str, set[str]] = field(default_factory=dict)  # degradations of one arm's predictor answer

    def degrade(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)

    def row(self, position: int) -> dict | None:
        """The online row of the user at ``position`` (None: unknown, or the store was down)."""
        return self.rows.get(self.req.user_ids[position]) if self.rows is not None else None

    def time(self, stage: str, started: float) -> None:
        """Record a stage's milliseconds (response parameters and the stage histogram)."""
        ms = (time.perf_counter() - started) * 1e3
        self.timings[stage] = self.timings.get(stage, 0.0) + ms
        m.observe_stage("transformer", stage, ms)


def cache_field(version: str, k: int) -> str:
    """The result cache's field of a model version's top-``k`` answer."""
    return f"{version}:{k}"
