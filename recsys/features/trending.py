"""Trending item counts: how many interactions an item had in the last 5 minutes and the last
hour, one definition offline and online.

``count(item, t, w)`` = interactions with the item whose timestamp is in ``(t - w, t]``. Training
evaluates it point in time, at the moment a recommendation would have been made (right after
the user's last interaction: :class:`TimelineTrending`); serving evaluates it at "now" from the
counts the stream consumer keeps in the online store (:class:`ArrayTrending`, refreshed in the
background). The ranker reads the two counts as ``item_trend_5m`` / ``item_trend_1h``.
"""

from __future__ import annotations

import collections
from typing import Protocol

import numpy as np
import pandas as pd

from recsys.features.catalog import Catalog
from recsys.features.users import UserState

WINDOWS: dict[str, int] = {"trend_5m": 300, "trend_1h": 3600}
_SHIFT = np.int64(1) << 40  # timestamps are below 2**40 (year 36812): item * 2**40 + ts sorts by (item, ts)


class Trending(Protocol):
    """Trending counts of candidate items for one user's request."""

    def counts(self, idx: np.ndarray, state: UserState) -> np.ndarray:
        """``[len(idx), len(WINDOWS)]`` counts of the catalog items ``idx``."""
        ...


class NoTrending:
    """No stream behind the server: every count is 0."""

    def counts(self, idx: np.ndarray, state: UserState) -> np.ndarray:
        return np.zeros((len(idx), len(WINDOWS)), np.float64)


class TimelineTrending:
    """Counts from a training history, at the user's last interaction (point in time)."""

    def __init__(self, interactions: pd.DataFrame, catalog: Catalog, ref_ts: int | None = None):
        idx = catalog.indices_aligned(interactions["item_id"].to_numpy())
        ts = interactions["timestamp"].to_numpy(np.int64)
        known = idx >= 0
        self.keys = np.sort(idx[known].astype(np.int64) * _SHIFT + ts[known])
        self.ref_ts = int(ref_ts if ref_ts is not None else (ts.max() if ts.size else 0))

    def counts(self, idx: np.ndarray, state: UserState) -> np.ndarray:
        t = np.int64(state.last_ts or self.ref_ts)
        base = np.asarray(idx, np.int64) * _SHIFT
        hi = np.searchsorted(self.keys, base + t, side="right")
        return np.stack([hi - np.searchsorted(self.keys, base + t - w, side="right") for w in WINDOWS.values()],
                        axis=1).astype(np.float64)


class ArrayTrending:
    """Counts held as one array per window, aligned with the catalog (what serving reads)."""

    def __init__(self, n_items: int):
        self.table = np.zeros((n_items, len(WINDOWS)), np.float64)

    def update(self, table: np.ndarray) -> None:
        self.table = np.asarray(table, np.float64)  # swapped whole: a request sees one snapshot

    def counts(self, idx: np.ndarray, state: UserState) -> np.ndarray:
        return self.table[np.asarray(idx, np.int64)]


class SlidingCounts:
    """Live counts per item over :data:`WINDOWS` (the stream consumer's state)."""

    def __init__(self) -> None:
        self.events: collections.deque[tuple[int, int]] = collections.deque()  # (ts, item), ~time order
        self.horizon = max(WINDOWS.values())

    def add(self, item_id: int, ts: int) -> None:
        self.events.append((int(ts), int(item_id)))

    def counts(self, now: int) -> dict[int, dict[str, int]]:
        """Every item with an event in the last hour: its count per window at ``now``."""
        while self.events and self.events[0][0] <= now - self.horizon:
            self.events.popleft()
        out: dict[int, dict[str, int]] = {}
        for ts, item in self.events:
            row = out.setdefault(item, dict.fromkeys(WINDOWS, 0))
            for name, w in WINDOWS.items():
                if now - w < ts <= now:
                    row[name] += 1
        return out
