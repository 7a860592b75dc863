"""The stream consumer: keeps online features fresh and archives every event.

    python -m recsys.online.consumer [--model-dir <bundle>] [--metrics-port 9108]

Reads the event log as a consumer group member (at-least-once delivery) and, per batch:

1. archives the events (date-partitioned parquet, :mod:`recsys.online.archive`);
2. applies each event once (``claim`` by event_id) to its user's online row
   (:func:`recsys.features.users.append_event`, through Feast);
3. updates the trending item counts (5 min / 1 h) in the online store's ``item_trending`` view,
   which the predictor's ranker reads;
4. acknowledges the batch.

A failure between 1 and 4 (the log down at the acknowledgement, a store write failing) delivers
the batch again. The consumer remembers what it archived and counted but could not acknowledge
yet, so its own redeliveries are neither archived nor counted twice; only a consumer killed in
between leaves a second archive row, which the archive's readers drop (one row per event_id).
The claim stops a second application in every case. A failed row write releases the batch's
claims (the log down too: before the next batch is claimed), so the redelivered batch applies
it; only a consumer killed between a claim and its row write or release leaves an event
archived but not applied online. Metrics on ``--metrics-port``: consumer lag, events by type,
batches, errors.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge, start_http_server

from recsys.features.trending import WINDOWS, SlidingCounts
from recsys.features.users import UserState, append_event
from recsys.online.archive import read_archive, write_batch
from recsys.online.events import EVENT_TYPES, Event, drop_cached_answers
from recsys.online.trending_store import write_item_trending

log = logging.getLogger("recsys.online.consumer")

LAG = Gauge("recommender_consumer_lag", "Events in the log the consumer has not acknowledged yet")
EVENTS = Counter("recommender_consumer_events", "Events consumed, by type", ["event_type"])
APPLIED = Counter("recommender_consumer_applied", "Events applied to online user rows (first delivery)")
BATCHES = Counter("recommender_consumer_batches", "Batches archived and acknowledged")
FAILURES = Counter("recommender_consumer_failures", "Batches that failed (retried: nothing acknowledged)")
for _t in EVENT_TYPES:
    EVENTS.labels(_t)


class Consumer:
    """One member of the log's consumer group."""

    def __init__(self, log_: Any, store: Any, archive_dir: str | Path, history_len: int, name: str | None = None,
                 batch: int = 500, cache: Any = None, cache_prefix: str = "recsys:rec", cache_ttl: int = 300):
        from recsys.online import user_rows

        self.log, self.store, self.archive_dir = log_, store, Path(archive_dir)
        # a sync redis client: answers cached before an event are dropped (and their generation renewed)
        self.cache, self.cache_prefix, self.cache_ttl = cache, cache_prefix, cache_ttl
        self.history_len, self.batch = history_len, batch
        self.name = name or f"{socket.gethostname()}-{id(self) % 10_000}"
        self.rows = user_rows
        self.trending = SlidingCounts()
        self._trend_items: set[int] = set()
        self._unreleased: list[Event] = []  # claims of unapplied events the log did not take back yet
        # event_ids archived / counted in trending whose batch is not acknowledged yet: a redelivery
        # of them (this consumer's pending entries) is not archived or counted again
        self._archived: set[str] = set()
        self._counted: set[str] = set()

    def warm_trending(self, now: int | None = None) -> None:
        """Rebuild the last hour's counts from the archive (a restarted consumer starts informed)."""
        now = int(now or time.time())
        recent = read_archive(self.archive_dir, since=now - max(WINDOWS.values()))
        for item, ts, kind in zip(recent["item_id"], recent["timestamp"], recent["event_type"]):
            if kind not in ("skip", "impression"):
                self.trending.add(int(item), int(ts))

    def _apply(self, events: list[Event]) -> int:
        """Each first-delivered event applied to its user's row, in time order; rows written once
        per user. The claim comes first (atomic: two deliveries of an event, even in one batch or
        to two consumers, never both apply it) and is released when the rows could not be
        written, so the retried batch applies the events. Cached answers of the batch's users are
        dropped on every delivery (a retry after a failed drop drops them)."""
        if self._unreleased:  # before any claim: the redelivered events must find themselves unclaimed
            self.log.release(self._unreleased)  # raises while the log is still down: the batch waits
            self._unreleased = []
        todo = [e for e in events if e.event_type != "impression"]
        first = [e for e, new in zip(todo, self.log.claim(todo)) if new]
        if first:
            try:
                self._write_rows(first)
            except Exception:
                self._release(first)
                raise
            APPLIED.inc(len(first))
        if self.cache is not None and todo:  # drop answers computed from the rows before these events
            pipe = self.cache.pipeline(transaction=True)
            drop_cached_answers(pipe, self.cache_prefix, sorted({e.user_id for e in todo}), self.cache_ttl)
            pipe.execute()
        return len(first)

    def _write_rows(self, events: list[Event]) -> None:
        users = sorted({e.user_id for e in events})
        rows = self.rows.get_user_features(self.store, users)
        states = {u: UserState.from_row(r) if r is not None else None for u, r in rows.items()}
        for e in sorted(events, key=lambda e: (e.timestamp, e.event_id)):
            states[e.user_id] = append_event(states[e.user_id], e.user_id, e.item_id, e.timestamp, self.history_len,
                                             event_type=e.event_type, value=e.value)
        self.rows.write_user_rows(self.store, [s.to_row() for s in states.values() if s is not None])

    def _release(self, events: list[Event]) -> None:
        try:
            self.log.release(events)
        except Exception as exc:  # noqa: BLE001 - the log is down too: released before the next batch
            self._unreleased.extend(events)
            log.warning("%d claims of unapplied events not released (%s); released before the next batch",
                        len(events), str(exc)[:200])

    def _update_trending(self, events: list[Event], now: int) -> int:
        for e in events:
            if e.event_type not in ("skip", "impression") and e.event_id not in self._counted:
                self.trending.add(e.item_id, e.timestamp)
        self._counted.update(e.event_id for e in events)
        counts = self.trending.counts(now)
        touched = set(counts) | self._trend_items  # items whose counts fell to 0 are written too
        self._trend_items = set(counts)
        rows = [{"item_id": i, **counts.get(i, dict.fromkeys(WINDOWS, 0))} for i in sorted(touched)]
        if rows:
            write_item_trending(self.store, rows)
        return len(rows)

    def run_once(self, block_ms: int = 1000) -> int:
        """Read, archive, apply, acknowledge one batch; the number of events in it."""
        entries = self.log.read(self.name, self.batch, block_ms)
        now = int(time.time())
        if not entries:
            self._update_trending([], now)  # counts decay without events
            LAG.set(self.log.lag())
            return 0
        events = [e for _, e in entries]
        write_batch([e for e in events if e.event_id not in self._archived], self.archive_dir)
        self._archived.update(e.event_id for e in events)
        self._apply(events)
        self._update_trending(events, now)
        self.log.ack([i for i, _ in entries])
        done = {e.event_id for e in events}
        self._archived -= done
        self._counted -= done
        for e in events:
            EVENTS.labels(e.event_type).inc()
        BATCHES.inc()
        LAG.set(self.log.lag())
        return len(events)

    def run(self, stop: threading.Event, retry_seconds: float = 1.0) -> None:
        """Until ``stop``: batches; a failure (the log or the store down) is retried, nothing is lost."""
        while not stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # noqa: BLE001 - a dependency failed: nothing was acknowledged
                FAILURES.inc()
                log.warning("consumer batch failed (%s); retrying in %.0f s", str(exc)[:200], retry_seconds)
                stop.wait(retry_seconds)


def main(argv: list[str] | None = None) -> int:
    from recsys.artifacts.bundle import read_manifest
    from recsys.artifacts.registry import ModelNotFound, resolve_model_dir
    from recsys.config import describe_settings_error, get_settings
    from recsys.online.event_log import open_log
    from recsys.online.feature_store import apply_definitions, get_store

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", "--model-dir", default=None, help="bundle whose history length the online rows "
                                                                     "keep (default HISTORY_LEN)")
    p.add_argument("--model_uri", default=None, help="or its models:/<name>@<alias> (resolved through MLflow)")
    p.add_argument("--metrics-port", type=int, default=9108, help="Prometheus /metrics (0 = off)")
    p.add_argument("--batch", type=int, default=500)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        s = get_settings()
    except Exception as exc:  # noqa: BLE001 - pydantic ValidationError: one line
        print(f"error: {describe_settings_error(exc)}", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(s.log_level)
    history_len = s.history_len
    try:
        model_dir = resolve_model_dir(args.model_dir, args.model_uri)
    except (ModelNotFound, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if model_dir:
        history_len = int(read_manifest(model_dir).get("settings", {}).get("history_len", history_len))
    store = get_store()
    apply_definitions(store)
    cache = None
    if s.redis_url:
        import redis

        cache = redis.Redis.from_url(s.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    consumer = Consumer(open_log(s.redis_url, s.runs_dir, stream=s.event_stream), store, s.archive_dir(), history_len,
                        batch=args.batch, cache=cache, cache_prefix=s.cache_prefix, cache_ttl=s.cache_ttl_seconds)
    consumer.warm_trending()
    if args.metrics_port:
        start_http_server(args.metrics_port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("consumer %s: log %s, archive %s, history_len %d", consumer.name, type(consumer.log).__name__,
             s.archive_dir(), history_len)
    consumer.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
