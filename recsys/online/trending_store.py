"""Trending item counts in the online store (the ``item_trending`` view): written by the stream
consumer, read in bulk by the predictor (:class:`TrendingReader`, refreshed in the background
into :class:`recsys.features.trending.ArrayTrending`)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recsys.features.trending import WINDOWS, ArrayTrending
from recsys.online.feature_store import TIMESTAMP, TRENDING_VIEW

if TYPE_CHECKING:  # pragma: no cover
    from feast import FeatureStore

log = logging.getLogger(__name__)


def write_item_trending(store: FeatureStore, rows: list[dict[str, Any]]) -> None:
    """Write ``item_id`` + the window counts of items to the online store."""
    df = pd.DataFrame([{"item_id": int(r["item_id"]), **{w: int(r[w]) for w in WINDOWS}} for r in rows])
    df[TIMESTAMP] = pd.Timestamp(dt.datetime.now(dt.UTC))
    store.write_to_online_store(TRENDING_VIEW, df)


class TrendingReader:
    """Every catalog item's trending counts, read with one online-store call."""

    def __init__(self, store: FeatureStore, item_ids: np.ndarray):
        from feast.infra.provider import get_provider
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        self.config = store.config
        self.view = store.get_feature_view(TRENDING_VIEW)
        self.provider = get_provider(store.config)
        self.keys = [EntityKey(join_keys=["item_id"], entity_values=[Value(int64_val=int(i))]) for i in item_ids]

    def read(self) -> np.ndarray:
        """``[n_items, len(WINDOWS)]`` counts (0 for items the stream has not seen)."""
        rows = self.provider.online_read(self.config, self.view, self.keys, list(WINDOWS))
        out = np.zeros((len(self.keys), len(WINDOWS)), np.float64)
        for i, (_, values) in enumerate(rows):
            if values:
                out[i] = [values[w].int64_val if w in values else 0 for w in WINDOWS]
        return out


class TrendingRefresher:
    """Keeps an :class:`ArrayTrending` current: a daemon thread reads the online store every
    ``every`` seconds; a failed read keeps the last counts (and says so once)."""

    def __init__(self, reader: TrendingReader, target: ArrayTrending, every: float = 2.0):
        self.reader, self.target, self.every = reader, target, every
        self._stop = threading.Event()
        self._failing = False

    def refresh(self) -> bool:
        try:
            self.target.update(self.reader.read())
        except Exception as exc:  # noqa: BLE001 - the store is down: serve the last counts
            if not self._failing:
                log.warning("trending counts not refreshed (%s); serving the last ones", str(exc)[:200])
            self._failing = True
            return False
        self._failing = False
        return True

    def start(self) -> None:
        self.refresh()

        def loop() -> None:
            while not self._stop.wait(self.every):
                self.refresh()

        threading.Thread(target=loop, name="trending-refresh", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
