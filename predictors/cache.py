"""Redis TTL cache of final results per (user, k, model version), with a circuit breaker.

One Redis hash per user (``<prefix>:u:<user_id>``, field ``<version>:<k>``) so a feedback
event invalidates every cached answer of that user with one DEL. Short socket timeouts and no
retries: when Redis is down the cache is skipped for ``retry_after`` seconds instead of
costing a timeout per request.
"""

from __future__ import annotations

import logging
import time

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from predictors.metrics import REDIS_UP

log = logging.getLogger(__name__)


class CacheDown(RuntimeError):
    """Redis is unreachable (or was, less than ``retry_after`` seconds ago)."""


class ResultCache:
    def __init__(self, url: str, ttl_seconds: int = 300, prefix: str = "recsys:rec", timeout: float = 0.05, retry_after: float = 1.0):
        self.url, self.ttl, self.prefix, self.retry_after = url, int(ttl_seconds), prefix, retry_after
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           retry=Retry(NoBackoff(), 0), health_check_interval=0)
        self._down_until = 0.0
        self.up = True
        REDIS_UP.set(1)

    def _key(self, user_id: int) -> str:
        return f"{self.prefix}:u:{int(user_id)}"

    def _guard(self) -> None:
        if self._down_until and time.monotonic() < self._down_until:
            raise CacheDown("redis down (circuit open)")

    def _failed(self, exc: Exception) -> CacheDown:
        if self.up:
            log.warning("redis unreachable at %s: %s", self.url, exc)
        self.up = False
        self._down_until = time.monotonic() + self.retry_after
        REDIS_UP.set(0)
        return CacheDown(str(exc))

    def _ok(self) -> None:
        if not self.up:
            log.info("redis reachable again")
        self.up = True
        self._down_until = 0.0
        REDIS_UP.set(1)

    def get_many(self, user_ids: list[int], field: str) -> list[dict | None]:
        self._guard()
        try:
            if len(user_ids) == 1:
                vals = [self.client.hget(self._key(user_ids[0]), field)]
            else:
                pipe = self.client.pipeline(transaction=False)
                for u in user_ids:
                    pipe.hget(self._key(u), field)
                vals = pipe.execute()
        except redis.RedisError as exc:
            raise self._failed(exc) from exc
        self._ok()
        return [orjson.loads(v) if v is not None else None for v in vals]

    def set_many(self, items: list[tuple[int, dict]], field: str) -> None:
        self._guard()
        try:
            pipe = self.client.pipeline(transaction=False)
            for u, value in items:
                pipe.hset(self._key(u), field, orjson.dumps(value))
                pipe.expire(self._key(u), self.ttl)
            pipe.execute()
        except redis.RedisError as exc:
            raise self._failed(exc) from exc
        self._ok()

    def invalidate(self, user_id: int) -> None:
        self._guard()
        try:
            self.client.delete(self._key(user_id))
        except redis.RedisError as exc:
            raise self._failed(exc) from exc
        self._ok()

    def ping(self) -> bool:
        try:
            self.client.ping()
        except redis.RedisError as exc:
            self._failed(exc)
            return False
        self._ok()
        return True
