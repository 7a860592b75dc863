"""Self-healing of the online store: rows the store lost are refilled from the model version.

When the transformer reads no row for a user the model version knows (Redis restarted empty,
keys evicted or flushed), or a row older than the version's (a store restored from an old
snapshot, a materialization that never ran), it answers from the version's own row
(``feature_store_miss`` / ``feature_store_behind``) and notifies the :class:`OnlineStoreHealer`.
The healer, on a background thread and at most once per ``interval`` seconds, reads which of
the version's users are missing or behind online and writes their rows from the bundle's
``users.parquet``; rows at least as recent as the version's are never overwritten (they may
hold events newer than the bundle).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from predictors import server_metrics as m
from recsys.features.users import UserState

log = logging.getLogger(__name__)


class OnlineStoreHealer:
    """Refills the online store's missing rows of the model version's users, in the background."""

    def __init__(self, features: Any, bundle_dir: str | Path, interval: float = 30.0, chunk: int = 500,
                 clock: Any = time.monotonic):
        self.features, self.bundle_dir, self.interval, self.chunk, self.clock = features, Path(bundle_dir), interval, \
            chunk, clock
        self._lock = threading.Lock()
        self._running = False
        self._last = -float("inf")
        self.healed = 0  # rows written so far

    def notify(self) -> bool:
        """A known user's row was missing: start a refill unless one runs or ran < ``interval`` ago.
        Returns whether a refill started."""
        if self.interval <= 0:
            return False
        with self._lock:
            if self._running or self.clock() - self._last < self.interval:
                return False
            self._running, self._last = True, self.clock()
        threading.Thread(target=self._run, name="online-store-healer", daemon=True).start()
        return True

    def _run(self) -> None:
        try:
            n = self.heal()
            if n:
                log.warning("online store: refilled %d rows of model version users it had lost", n)
        except Exception as exc:  # noqa: BLE001 - the store failed again: the next miss retries
            log.warning("online store refill failed (%s); retried after %.0f s", str(exc)[:200], self.interval)
        finally:
            with self._lock:
                self._running = False

    def heal(self) -> int:
        """Write the bundle's rows of users missing or behind online; the number written."""
        table = pd.read_parquet(self.bundle_dir / "users.parquet")
        written = 0
        for a in range(0, len(table), self.chunk):
            part = table.iloc[a:a + self.chunk]
            online = self.features.get([int(u) for u in part["user_id"]])
            missing = [UserState.from_row(r).to_row() for r in part.to_dict("records")
                       if _stale(online.get(int(r["user_id"])), int(r["last_ts"]))]
            if missing:
                self.features.write_rows(missing)
                written += len(missing)
                m.ROWS_HEALED.inc(len(missing))
            time.sleep(0)  # let the serving threads run between chunks
        self.healed += written
        return written


def _stale(online_row: dict | None, version_last_ts: int) -> bool:
    """No row online, or one without the version's latest interaction."""
    return online_row is None or int(online_row.get("last_ts") or 0) < version_last_ts
