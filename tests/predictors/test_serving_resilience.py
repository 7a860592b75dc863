"""Deadlines and circuit breakers (predictors.resilience): no call waits past its deadline, a
blocking client never holds the event loop, a failing dependency is not called while its circuit
is open, and one probe closes it again."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from predictors.resilience import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, Dependency, DependencyDown


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_the_threshold_and_one_probe_decides():
    clock = Clock()
    changes = []
    b = CircuitBreaker("x", failure_threshold=2, open_seconds=1.0, on_change=changes.append, clock=clock)
    assert b.allow()
    b.failure()
    assert b.state == CLOSED and b.allow()  # one failure: still closed
    b.failure()
    assert b.state == OPEN and not b.allow()
    clock.now = 0.5
    assert not b.allow()
    clock.now = 1.0
    assert b.allow() and b.state == HALF_OPEN  # the probe
    assert not b.allow()  # only one probe at a time
    b.failure()
    assert b.state == OPEN and not b.allow()  # the probe failed: open again, for a full period
    clock.now = 2.1
    assert b.allow()
    b.success()
    assert b.state == CLOSED and b.allow() and b.failures == 0
    assert changes == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


def test_a_hung_coroutine_costs_the_deadline_and_then_nothing():
    outcomes = []
    dep = Dependency("slow", deadline=0.05, breaker=CircuitBreaker("slow", 1, 60.0),
                     on_call=lambda d, o: outcomes.append(o))

    async def hang():
        await asyncio.sleep(30)

    async def scenario():
        t = time.perf_counter()
        with pytest.raises(DependencyDown, match="timeout") as first:
            await dep.call(hang)
        waited = time.perf_counter() - t
        t = time.perf_counter()
        with pytest.raises(DependencyDown, match="circuit open"):
            await dep.call(hang)
        return waited, time.perf_counter() - t, first.value.cause

    waited, then, cause = asyncio.run(scenario())
    assert 0.04 <= waited < 0.5 and then < 0.01 and cause == "timeout"
    assert outcomes == ["timeout", "open"]


def test_a_blocking_client_never_holds_the_event_loop():
    """A synchronous call that hangs (a socket with no answer) runs on the dependency's pool: the
    request gets DependencyDown at the deadline while other coroutines kept running."""
    release = threading.Event()
    dep = Dependency("blocking", deadline=0.1, breaker=CircuitBreaker("blocking", 5, 1.0))
    ticks = []

    async def ticker():
        for _ in range(10):
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)

    async def scenario():
        t = time.perf_counter()
        tick = asyncio.create_task(ticker())
        with pytest.raises(DependencyDown, match="timeout"):
            await dep.run(release.wait, 10)
        await tick
        return time.perf_counter() - t

    try:
        elapsed = asyncio.run(scenario())
    finally:
        release.set()
        dep.shutdown()
    assert elapsed < 0.5
    assert len(ticks) == 10 and max(b - a for a, b in zip(ticks, ticks[1:])) < 0.08  # the loop kept turning


def test_errors_are_failures_and_successes_close_the_circuit():
    dep = Dependency("flaky", deadline=1.0, breaker=CircuitBreaker("flaky", 1, 0.0))

    async def boom():
        raise ConnectionError("refused")

    async def ok():
        return 42

    async def scenario():
        with pytest.raises(DependencyDown, match="ConnectionError") as exc:
            await dep.call(boom)
        assert exc.value.cause == "error" and dep.breaker.state == OPEN
        return await dep.call(ok)  # open_seconds=0: the next call is the probe

    assert asyncio.run(scenario()) == 42 and dep.breaker.state == CLOSED
