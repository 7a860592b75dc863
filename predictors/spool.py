"""The event spool: where the transformer keeps events while the event log is unreachable.

An event is acknowledged only once it is durable: in the log, or, when the log does not answer,
in this spool (one JSON line per event, appended and fsynced). The spool is bounded
(``SPOOL_MAX_BYTES``): full, the event is refused with 503 and Retry-After, never dropped
silently. When the log answers again, :meth:`EventSpool.drain` replays the spooled events into
it in order and truncates the file; a crash mid-replay replays some events again, which the
consumer's claim by event_id makes harmless.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from recsys.online.event_log import dumps
from recsys.online.events import Event


class SpoolFull(RuntimeError):
    """The spool holds ``SPOOL_MAX_BYTES`` already."""


class EventSpool:
    """An append-only, fsynced file of events waiting for the log."""

    def __init__(self, path: str | Path, max_bytes: int):
        self.path, self.max_bytes = Path(path), int(max_bytes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._depth = self._count()  # events left by an earlier process are replayed too

    @property
    def draining(self) -> Path:
        return self.path.with_suffix(self.path.suffix + ".draining")

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in (self.path, self.draining) if p.exists())

    def depth(self) -> int:
        """Events waiting in the spool."""
        return self._depth

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
        events = [Event.model_validate_json(line) for line in self.draining.read_bytes().splitlines() if line.strip()]
        for e in events:
            append(e)  # raises when the log is down again: the file stays for the next drain
        with self._lock:
            self.draining.unlink()
            self._depth -= len(events)
        return len(events)
