"""The event spool: where the transformer keeps events while the event log is unreachable.

An event is acknowledged only once it is durable: in the log, or, when the log does not answer,
in this spool (one JSON line per event, appended and fsynced). The spool is bounded
(``SPOOL_MAX_BYTES``): full, the event is refused with 503 and Retry-After, never dropped
silently. When the log answers again, :meth:`EventSpool.drain` replays the spooled events into
it in order and truncates the file; a crash mid-replay replays some events again, which the
consumer's claim by event_id makes harmless. :class:`SpoolDrainer` runs the replay on its own
thread: started when an event is spooled, and at start-up when an earlier process left events.

A process killed in the middle of an append leaves a torn last line, never acknowledged (the
fsync had not returned): opening the spool ends it with a newline, so the next event starts a
line of its own, and a replay sets every line that does not parse aside into
``<spool>.rejected`` instead of failing on it for ever.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from recsys.online.event_log import dumps
from recsys.online.events import Event

log = logging.getLogger(__name__)
DRAIN_EVERY_SECONDS = 1.0  # between replay attempts while the log is still down


class SpoolFull(RuntimeError):
    """The spool holds ``SPOOL_MAX_BYTES`` already."""


class EventSpool:
    """An append-only, fsynced file of events waiting for the log."""

    def __init__(self, path: str | Path, max_bytes: int):
        self.path, self.max_bytes = Path(path), int(max_bytes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._end_torn_line()
        self._depth = self._count()  # events left by an earlier process are replayed too

    @property
    def draining(self) -> Path:
        return self.path.with_suffix(self.path.suffix + ".draining")

    @property
    def rejected(self) -> Path:
        return self.path.with_suffix(self.path.suffix + ".rejected")

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in (self.path, self.draining) if p.exists())

    def depth(self) -> int:
        """Events waiting in the spool."""
        return self._depth

    def _end_torn_line(self) -> None:
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open("rb+") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")
                    fh.flush()
                    os.fsync(fh.fileno())

    def _count(self) -> int:
        n = 0
        for p in (self.draining, self.path):
            if p.exists():
                with p.open("rb") as fh:
                    n += sum(1 for line in fh if line.strip())
        return n

    def append(self, event: Event) -> None:
        line = (dumps(event) + "\n").encode()
        with self._lock:
            if self.size + len(line) > self.max_bytes:
                raise SpoolFull(f"event spool full ({self.size} of {self.max_bytes} bytes, SPOOL_MAX_BYTES)")
            with self.path.open("ab") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            self._depth += 1

    def _read_draining(self) -> tuple[list[Event], list[bytes]]:
        events, bad = [], []
        for line in self.draining.read_bytes().splitlines():
            if line.strip():
                try:
                    events.append(Event.model_validate_json(line))
                except ValidationError:
                    bad.append(line)
        return events, bad

    def drain(self, append: Callable[[Event], object]) -> int:
        """Replay every spooled event through ``append`` (the log's), oldest first. The spool file
        is first renamed aside (appends go on into a new one, never waiting for the replay) and
        deleted only after all its events went through; a failure keeps it for the next drain.
        Returns how many events were replayed."""
        with self._lock:
            if not self.draining.exists():
                if not self.path.exists() or self.path.stat().st_size == 0:
                    return 0
                os.replace(self.path, self.draining)
        events, bad = self._read_draining()
        for e in events:
            append(e)  # raises when the log is down again: the file stays for the next drain
        if bad:
            with self.rejected.open("ab") as fh:
                fh.write(b"".join(line + b"\n" for line in bad))
            log.error("event spool: %d lines that are no event set aside in %s", len(bad), self.rejected)
        with self._lock:
            self.draining.unlink()
            self._depth -= len(events) + len(bad)
        return len(events)


class SpoolDrainer:
    """Replays a spool into the log on a thread of its own until the spool is empty, retrying
    every DRAIN_EVERY_SECONDS while the log is down (a hung log holds this thread, never a
    request). One replay at a time; :meth:`start` is cheap and safe to call on every spooled
    event."""

    def __init__(self, spool: EventSpool, append: Callable[[Event], object],
                 on_depth: Callable[[int], None] | None = None):
        self.spool, self.append, self.on_depth = spool, append, on_depth
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="spool-drainer", daemon=True)
                self._thread.start()

    def _done(self) -> bool:
        """Empty: the thread ends (under the lock, so an event spooled meanwhile starts a new one)."""
        with self._lock:
            if self.spool.depth():
                return False
            self._thread = None
            return True

    def _run(self) -> None:
        failing = False
        while not self._done():
            try:
                n = self.spool.drain(self.append)
            except Exception as exc:  # noqa: BLE001 - the log is down (any client error): try again later
                if not failing:
                    log.warning("event log still unavailable (%s): %d spooled events wait; retrying every %g s",
                                str(exc)[:200], self.spool.depth(), DRAIN_EVERY_SECONDS)
                failing, n = True, 0
            else:
                failing = False
                if n:
                    log.warning("event log reachable: %d spooled events replayed", n)
            if self.on_depth is not None:
                self.on_depth(self.spool.depth())
            if not n:
                time.sleep(DRAIN_EVERY_SECONDS)
