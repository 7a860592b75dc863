"""Redis TTL cache of final results per (user, k, model version), asynchronous (redis.asyncio).

One Redis hash per user (``<prefix>:u:<user_id>``, field ``<version>:<k>``) so a feedback
event invalidates every cached answer of that user at once. The hash also holds the user's
generation (:data:`recsys.online.events.CACHE_GENERATION`), which a drop renews: reads return it,
and an answer is written only if the generation is still the one it was read under (a script,
atomic), so an answer computed from a row older than an event is never cached after the drop.
Short socket timeouts and no retries; the transformer calls it through its ``redis`` dependency
(deadline + circuit breaker, :mod:`predictors.resilience`), so a dead or hung Redis costs a
request at most the deadline.
"""

from __future__ import annotations

import logging

import orjson
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from recsys.online.events import CACHE_GENERATION, drop_cached_answers, result_cache_key

log = logging.getLogger(__name__)

# HSET the answer and renew the TTL only while the user's generation is the one the request read.
_STORE_IF_SAME_GENERATION = """
local generation = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if generation ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class ResultCache:
    """The cache's reads and writes; every method is a coroutine."""

    def __init__(self, url: str, ttl_seconds: int = 300, prefix: str = "recsys:rec", timeout: float = 0.05):
        self.url, self.ttl, self.prefix = url, int(ttl_seconds), prefix
        self.client = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                              retry=Retry(NoBackoff(), 0), health_check_interval=0)
        self._store = self.client.register_script(_STORE_IF_SAME_GENERATION)

    def _key(self, user_id: int) -> str:
        return result_cache_key(self.prefix, user_id)

    async def get_many(self, user_ids: list[int], field: str) -> tuple[list[dict | None], dict[int, str]]:
        """The cached answers (None: none) and each user's generation (for :meth:`set_many`)."""
        if len(user_ids) == 1:
            got = [await self.client.hmget(self._key(user_ids[0]), [field, CACHE_GENERATION])]
        else:
            async with self.client.pipeline(transaction=False) as pipe:
                for u in user_ids:
                    pipe.hmget(self._key(u), [field, CACHE_GENERATION])
                got = await pipe.execute()
        answers = [orjson.loads(v) if v is not None else None for v, _ in got]
        return answers, {u: (g.decode() if g else "") for u, (_, g) in zip(user_ids, got)}

    async def set_many(self, items: list[tuple[int, dict]], field: str, generations: dict[int, str]) -> None:
        """Store each answer unless its user's answers were dropped since ``generations`` was read."""
        async with self.client.pipeline(transaction=False) as pipe:
            for u, value in items:
                await self._store(keys=[self._key(u)], args=[CACHE_GENERATION, generations.get(u, ""), field,
                                                             orjson.dumps(value), self.ttl], client=pipe)
            await pipe.execute()

    async def invalidate(self, user_id: int) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            drop_cached_answers(pipe, self.prefix, [user_id], self.ttl)
            await pipe.execute()

    async def ping(self) -> bool:
        return bool(await self.client.ping())
