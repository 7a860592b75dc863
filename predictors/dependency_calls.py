"""How the transformer calls its dependencies: online rows, the event log, the Redis probe.

Every call goes through the transformer's :class:`~predictors.resilience.Dependency` of that
name (deadline + circuit breaker); asynchronous clients where the store has one, a thread pool
where it does not.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from predictors.resilience import Dependency, DependencyDown
from recsys.online.event_log import RedisStreamLog
from recsys.online.events import Event

PROBE_EVERY_SECONDS = 5.0  # background health probe of Redis (the alert and the circuit need no traffic)


class DependencyCalls:
    """Mixed into the transformer: what it reads and writes outside itself."""

    deps: dict[str, Dependency]
    features: Any
    cache: Any
    event_log: Any
    _event_client: Any
    _background: asyncio.Task | None

    def _start_background(self) -> None:
        """On the first request (inside the server's event loop): the Redis health probe."""
        if self._background is None and self.cache is not None:
            self._background = asyncio.get_running_loop().create_task(self._probe_redis())

    async def _probe_redis(self) -> None:
        while True:
            await asyncio.sleep(PROBE_EVERY_SECONDS)
            try:
                await self.deps["redis"].call(self.cache.ping)
            except DependencyDown:
                pass

    # ---- dependencies ----------------------------------------------------------------------
    @property
    def features_shared(self) -> bool:
        """Whether the online rows live in a store the stream consumer updates (Feast), rather
        than in this process (the bundle source)."""
        return bool(getattr(self.features, "remote", False))

    async def append_event(self, event: Event) -> str:
        """The event into the log, under its deadline (raises DependencyDown)."""
        lg = self.event_log
        if lg is None:
            raise DependencyDown("event_log", "error", "no event log configured")
        if isinstance(lg, RedisStreamLog):
            if self._event_client is None:  # created in the server's event loop, the one that uses it
                self._event_client = aioredis.Redis.from_url(lg.url, socket_timeout=1.0, socket_connect_timeout=1.0,
                                                             retry=Retry(NoBackoff(), 0))
            client = self._event_client
            return await self.deps["event_log"].call(lambda: lg.append_async(client, event))
        return await self.deps["event_log"].run(lg.append, event)

    async def read_rows(self, user_ids: list[int]) -> dict[int, dict | None]:
        """Online rows of ``user_ids`` (raises DependencyDown when the store does not answer)."""
        f = self.features
        if not getattr(f, "remote", False):
            return f.get(user_ids)
        if f.reads_async:
            return await self.deps["feature_store"].call(lambda: f.aget(user_ids))
        return await self.deps["feature_store"].run(f.get, user_ids)
