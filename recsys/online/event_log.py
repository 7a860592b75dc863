"""The durable event log: what an acknowledged event is written to before the client hears back.

Two implementations with one interface (:class:`EventLog`):

* :class:`RedisStreamLog` (``REDIS_URL`` set): a Redis Stream (``XADD`` with approximate
  ``MAXLEN`` retention), read by a consumer group (``XREADGROUP``; pending entries are delivered
  again until acknowledged). Durability is Redis persistence: the chart runs it with
  ``appendonly yes`` and ``appendfsync everysec`` (helm/redis/values.yaml). Redis write(2)s the
  append-only buffer to the file before it sends the replies of that event-loop turn, so an
  acknowledged ``XADD`` is in the kernel's page cache already: a killed or crashed redis-server
  process loses none. The machine or its kernel going down loses what was not fsynced yet, about
  the last second. One exception: while the previous background fsync is still running (a disk
  too slow for the write rate; Redis logs "Asynchronous AOF fsync is taking too long") Redis
  postpones the write(2) by up to 2 s and replies all the same, so in that state a killed process
  loses up to 2 s of acknowledged events too. ``appendfsync always`` closes both windows at the
  cost of an fsync per write.
* :class:`SqliteEventLog` (no ``REDIS_URL``: the embedded default): a SQLite file under
  ``RUNS_DIR/events`` (WAL, synchronous=FULL), one offset per consumer group.

Delivery is at least once. ``claim`` makes applying an event idempotent: it answers, per
event_id, whether this is its first application (Redis: one set per event day, expiring after
the window events are accepted in; SQLite: a table), atomically for a batch. ``release`` undoes
the claims of a batch whose application failed, so its redelivery applies it.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from recsys.online.events import Event

Entry = tuple[str, Event]  # (log entry id, event)
CLAIM_TTL_SECONDS = 9 * 86_400  # longer than the accepted event window (EVENT_MAX_PAST_SECONDS + slack)


class EventLog(Protocol):
    """What the servers, the consumer and the export need from the log."""

    def append(self, event: Event) -> str: ...

    def read(self, consumer: str, count: int = 500, block_ms: int = 1000) -> list[Entry]: ...

    def ack(self, ids: list[str]) -> None: ...

    def claim(self, events: list[Event]) -> list[bool]: ...

    def release(self, events: list[Event]) -> None: ...

    def lag(self) -> int: ...

    def entries(self) -> Iterator[Event]: ...


def _day(event: Event) -> str:
    return dt.datetime.fromtimestamp(event.timestamp, dt.UTC).strftime("%Y%m%d")


class RedisStreamLog:
    """A Redis Stream with one consumer group. ``client`` is a sync redis-py client (consumer,
    export, spool replay); the transformer appends through :meth:`append_async` on its own
    asynchronous client."""

    def __init__(self, url: str, stream: str = "recsys:events", group: str = "consumer", maxlen: int = 1_000_000,
                 timeout: float = 2.0):
        import redis

        self.url, self.stream, self.group, self.maxlen = url, stream, group, maxlen
        self.client: Any = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._group_ready = False

    def _fields(self, event: Event) -> dict[str, str]:
        return {"e": event.model_dump_json()}

    def append(self, event: Event) -> str:
        entry = self.client.xadd(self.stream, self._fields(event), maxlen=self.maxlen, approximate=True)
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    async def append_async(self, client, event: Event) -> str:
        """XADD through an asynchronous redis client (the transformer's)."""
        entry = await client.xadd(self.stream, self._fields(event), maxlen=self.maxlen, approximate=True)
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    def ensure_group(self) -> None:
        import redis

        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def read(self, consumer: str, count: int = 500, block_ms: int = 1000) -> list[Entry]:
        """This consumer's pending entries first (delivered before, never acknowledged), then new ones."""
        import redis

        if not self._group_ready:
            self.ensure_group()
        try:
            got = self.client.xreadgroup(self.group, consumer, {self.stream: "0"}, count=count)
            entries = got[0][1] if got else []
            if not entries:
                got = self.client.xreadgroup(self.group, consumer, {self.stream: ">"}, count=count, block=block_ms)
                entries = got[0][1] if got else []
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream went away (a Redis without persistence restarted)
                self._group_ready = False
                return []
            raise
        out = []
        for entry_id, fields in entries:
            raw = fields.get(b"e") or fields.get("e")
            out.append((entry_id.decode() if isinstance(entry_id, bytes) else entry_id, Event.model_validate_json(raw)))
        return out

    def ack(self, ids: list[str]) -> None:
        if ids:
            self.client.xack(self.stream, self.group, *ids)

    def _claim_key(self, event: Event) -> str:
        return f"{self.stream}:applied:{_day(event)}"

    def claim(self, events: list[Event]) -> list[bool]:
        """One MULTI/EXEC: every event claimed or (the call failing) none."""
        if not events:
            return []
        pipe = self.client.pipeline(transaction=True)
        for e in events:
            pipe.sadd(self._claim_key(e), e.event_id)
            pipe.expire(self._claim_key(e), CLAIM_TTL_SECONDS)
        res = pipe.execute()
        return [bool(n) for n in res[0::2]]

    def release(self, events: list[Event]) -> None:
        """Undo the claims of events that were not applied after all."""
        if events:
            pipe = self.client.pipeline(transaction=True)
            for e in events:
                pipe.srem(self._claim_key(e), e.event_id)
            pipe.execute()

    def lag(self) -> int:
        """Entries not yet delivered to the group (+ delivered, not acknowledged)."""
        if not self.client.exists(self.stream):
            return 0
        groups = {g["name"].decode() if isinstance(g["name"], bytes) else g["name"]: g
                  for g in self.client.xinfo_groups(self.stream)}
        g = groups.get(self.group)
        if g is None:
            return int(self.client.xlen(self.stream))
        return int(g.get("lag") or 0) + int(g.get("pending") or 0)

    def entries(self) -> Iterator[Event]:
        """Every event still in the stream, oldest first."""
        last = "-"
        while True:
            batch = self.client.xrange(self.stream, min=last, max="+", count=1000)
            if last != "-":
                batch = batch[1:]
            if not batch:
                return
            for _, fields in batch:
                yield Event.model_validate_json(fields.get(b"e") or fields.get("e"))
            last = batch[-1][0].decode() if isinstance(batch[-1][0], bytes) else batch[-1][0]


class SqliteEventLog:
    """The embedded log: a SQLite file (WAL, synchronous=FULL), an offset per group. An event_id
    already in the log is not appended again."""

    def __init__(self, path: str | Path, group: str = "consumer", max_rows: int = 1_000_000):
        self.path, self.group, self.max_rows = Path(path), group, max_rows
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._db() as db:
            db.executescript(
                "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT UNIQUE, "
                "body TEXT NOT NULL);"
                "CREATE TABLE IF NOT EXISTS offsets (grp TEXT PRIMARY KEY, seq INTEGER NOT NULL);"
                "CREATE TABLE IF NOT EXISTS applied (event_id TEXT PRIMARY KEY, at REAL NOT NULL);")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
        return db

    def append(self, event: Event) -> str:
        db = self._db()
        cur = db.execute("INSERT OR IGNORE INTO events (event_id, body) VALUES (?, ?)",
                         (event.event_id, event.model_dump_json()))
        if cur.rowcount == 0:
            row = db.execute("SELECT seq FROM events WHERE event_id = ?", (event.event_id,)).fetchone()
            return str(row[0])
        return str(cur.lastrowid)

    def _offset(self) -> int:
        row = self._db().execute("SELECT seq FROM offsets WHERE grp = ?", (self.group,)).fetchone()
        return int(row[0]) if row else 0

    def read(self, consumer: str, count: int = 500, block_ms: int = 1000) -> list[Entry]:
        end = time.monotonic() + block_ms / 1000
        while True:
            rows = self._db().execute("SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                      (self._offset(), count)).fetchall()
            if rows or time.monotonic() >= end:
                return [(str(seq), Event.model_validate_json(body)) for seq, body in rows]
            time.sleep(0.05)

    def ack(self, ids: list[str]) -> None:
        if not ids:
            return
        db = self._db()
        db.execute("INSERT INTO offsets (grp, seq) VALUES (?, ?) ON CONFLICT(grp) DO UPDATE SET seq = "
                   "max(seq, excluded.seq)", (self.group, max(int(i) for i in ids)))
        db.execute("DELETE FROM events WHERE seq <= (SELECT max(seq) FROM events) - ?", (self.max_rows,))

    def claim(self, events: list[Event]) -> list[bool]:
        """One transaction: every event claimed or (the call failing) none."""
        db = self._db()
        out = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for e in events:
                cur = db.execute("INSERT OR IGNORE INTO applied (event_id, at) VALUES (?, ?)",
                                 (e.event_id, time.time()))
                out.append(cur.rowcount == 1)
            db.execute("DELETE FROM applied WHERE at < ?", (time.time() - CLAIM_TTL_SECONDS,))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return out

    def release(self, events: list[Event]) -> None:
        """Undo the claims of events that were not applied after all."""
        self._db().executemany("DELETE FROM applied WHERE event_id = ?", [(e.event_id,) for e in events])

    def lag(self) -> int:
        return int(self._db().execute("SELECT count(*) FROM events WHERE seq > ?", (self._offset(),)).fetchone()[0])

    def entries(self) -> Iterator[Event]:
        for (body,) in self._db().execute("SELECT body FROM events ORDER BY seq"):
            yield Event.model_validate_json(body)


def open_log(redis_url: str | None, runs_dir: str | Path,
             stream: str = "recsys:events") -> RedisStreamLog | SqliteEventLog:
    """The log of this environment: the Redis Stream with REDIS_URL, else the embedded SQLite log."""
    if redis_url:
        return RedisStreamLog(redis_url, stream=stream)
    return SqliteEventLog(Path(runs_dir) / "events" / "log.db")


def dumps(event: Event) -> str:
    """One JSON line (the spool's format)."""
    return json.dumps(event.model_dump(), separators=(",", ":"))
