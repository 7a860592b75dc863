"""Deadlines and circuit breakers: no request waits on a dependency longer than its deadline.

Each dependency of the transformer (the Redis result cache, the online feature store, the
predictor) is a :class:`Dependency`: every call runs under ``asyncio.wait_for`` with the
dependency's deadline (synchronous clients run on a small thread pool, never on the event
loop), and a :class:`CircuitBreaker` stops calling a dependency that failed: after
``failure_threshold`` consecutive failures the circuit opens and calls fail at once for
``open_seconds``; then one probe call is let through (half-open): success closes the circuit,
failure opens it again. A failed call raises :class:`DependencyDown`; the caller degrades the
answer and flags the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from predictors import server_metrics as m

if TYPE_CHECKING:
    from recsys.config import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class DependencyDown(RuntimeError):
    """A dependency did not answer: its circuit is open, the call timed out or it failed."""

    def __init__(self, dependency: str, cause: str, detail: str = ""):
        super().__init__(f"{dependency}: {cause}" + (f" ({detail})" if detail else ""))
        self.dependency, self.cause = dependency, cause


class CircuitBreaker:
    """Closed -> open after ``failure_threshold`` consecutive failures -> half-open (one probe)
    after ``open_seconds`` -> closed on the probe's success, open again on its failure.

    ``on_change(state)`` is called on every transition (metrics, logs). Time comes from
    ``clock`` (monotonic seconds) so tests can drive it.
    """

    def __init__(self, name: str, failure_threshold: int = 1, open_seconds: float = 1.0,
                 on_change: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic):
        self.name, self.failure_threshold, self.open_seconds = name, max(1, failure_threshold), open_seconds
        self.on_change, self.clock = on_change, clock
        self.state, self.failures, self.opened_at, self.probing = CLOSED, 0, 0.0, False

    def _set(self, state: str) -> None:
        if state != self.state:
            log.log(logging.WARNING if state == OPEN else logging.INFO, "%s: circuit %s -> %s", self.name, self.state,
                    state)
            self.state = state
            if self.on_change is not None:
                self.on_change(state)

    def allow(self) -> bool:
        """Whether a call may go out now (in half-open state: only the one probe)."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN and self.clock() - self.opened_at >= self.open_seconds:
            self._set(HALF_OPEN)
            self.probing = False
        if self.state == HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def success(self) -> None:
        self.failures, self.probing = 0, False
        self._set(CLOSED)

    def failure(self) -> None:
        self.failures += 1
        self.probing = False
        if self.state == HALF_OPEN or self.failures >= self.failure_threshold:
            self.opened_at = self.clock()
            self._set(OPEN)

    @property
    def up(self) -> bool:
        return self.state == CLOSED


class Dependency:
    """One dependency: its deadline, its circuit breaker, and a thread pool for blocking clients."""

    def __init__(self, name: str, deadline: float, breaker: CircuitBreaker | None = None, threads: int = 4,
                 on_call: Callable[[str, str], None] | None = None):
        self.name, self.deadline = name, deadline
        self.breaker = breaker or CircuitBreaker(name)
        self.on_call = on_call  # (dependency, outcome) -> metrics
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"dep-{name}")

    def _outcome(self, outcome: str) -> None:
        if self.on_call is not None:
            self.on_call(self.name, outcome)

    async def call(self, make: Callable[[], Awaitable[T]], deadline: float | None = None) -> T:
        """Await ``make()`` under the deadline and the circuit breaker."""
        if not self.breaker.allow():
            self._outcome("open")
            raise DependencyDown(self.name, "circuit open")
        try:
            result = await asyncio.wait_for(make(), self.deadline if deadline is None else deadline)
        except TimeoutError as exc:
            self.breaker.failure()
            self._outcome("timeout")
            raise DependencyDown(self.name, "timeout", f"no answer within {self.deadline:g} s") from exc
        except DependencyDown:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of a dependency degrades the answer
            self.breaker.failure()
            self._outcome("error")
            raise DependencyDown(self.name, "error", repr(exc)[:200]) from exc
        self.breaker.success()
        self._outcome("ok")
        return result

    async def run(self, fn: Callable[..., T], *args: Any, deadline: float | None = None) -> T:
        """:meth:`call` for a blocking function: it runs on this dependency's thread pool, so a
        hung client holds a pool thread, never the event loop."""
        loop = asyncio.get_running_loop()
        return await self.call(lambda: loop.run_in_executor(self._pool, fn, *args), deadline)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def transformer_dependencies(settings: Settings) -> dict[str, Dependency]:
    """The transformer's dependencies with their deadlines, breakers and metrics: a dependency is
    "up" (``recommender_dependency_up``; ``recommender_redis_up`` for Redis) while its last call
    answered."""
    deadlines = {"redis": settings.cache_timeout_seconds, "feature_store": settings.feature_store_timeout_seconds,
                 "predictor": settings.predictor_timeout_seconds, "event_log": settings.event_log_timeout_seconds}

    def on_call(name: str, outcome: str) -> None:
        m.DEPENDENCY_CALLS.labels(name, outcome).inc()
        if outcome != "open":
            up = 1 if outcome == "ok" else 0
            m.DEPENDENCY_UP.labels(name).set(up)
            if name == "redis":
                m.REDIS_UP.labels("transformer").set(up)

    return {name: Dependency(name, deadline, CircuitBreaker(name, settings.circuit_failure_threshold,
                                                            settings.circuit_open_seconds), on_call=on_call)
            for name, deadline in deadlines.items()}


def mark_in_use(names: list[str]) -> None:
    """Export ``recommender_dependency_up`` (1 until a call fails) for the dependencies this
    server really has: no series for one it does not use, so no alert about it."""
    for name in names:
        m.DEPENDENCY_UP.labels(name).set(1)
        if name == "redis":
            m.REDIS_UP.labels("transformer").set(1)
