"""Redis TTL cache of final results per (user, k, model version), asynchronous (redis.asyncio).

One Redis hash per user (``<prefix>:u:<user_id>``, field ``<version>:<k>``) so a feedback
event invalidates every cached answer of that user with one DEL. Short socket timeouts and no
retries; the transformer calls it through its ``redis`` dependency (deadline + circuit breaker,
:mod:`predictors.resilience`), so a dead or hung Redis costs a request at most the deadline.
"""

from __future__ import annotations

import logging

import orjson
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from recsys.online.events import result_cache_key

log = logging.getLogger(__name__)


class ResultCache:
    """The cache's reads and writes; every method is a coroutine."""

    def __init__(self, url: str, ttl_seconds: int = 300, prefix: str = "recsys:rec", timeout: float = 0.05):
        self.url, self.ttl, self.prefix = url, int(ttl_seconds), prefix
        self.client = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                              retry=Retry(NoBackoff(), 0), health_check_interval=0)

    def _key(self, user_id: int) -> str:
        return result_cache_key(self.prefix, user_id)

    async def get_many(self, user_ids: list[int], field: str) -> list[dict | None]:
        if len(user_ids) == 1:
            vals = [await self.client.hget(self._key(user_ids[0]), field)]
        else:
            async with self.client.pipeline(transaction=False) as pipe:
                for u in user_ids:
                    pipe.hget(self._key(u), field)
                vals = await pipe.execute()
        return [orjson.loads(v) if v is not None else None for v in vals]

    async def set_many(self, items: list[tuple[int, dict]], field: str) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for u, value in items:
                pipe.hset(self._key(u), field, orjson.dumps(value))
                pipe.expire(self._key(u), self.ttl)
            await pipe.execute()

    async def invalidate(self, user_id: int) -> None:
        await self.client.delete(self._key(user_id))

    async def ping(self) -> bool:
        return bool(await self.client.ping())
