"""The predictor's trending counts: the stream consumer's ``item_trending`` rows, read from the
online store into the engine's :class:`~recsys.features.trending.ArrayTrending` every few seconds
by a background thread (which also imports Feast, so the server starts without waiting for it).
Until the first read, and whenever the store does not answer, the last counts (at first zeros)
are served."""

from __future__ import annotations

import logging
import threading
from typing import Any

from recsys.features.trending import ArrayTrending

log = logging.getLogger(__name__)


def attach_trending(engine: Any, settings: Any, every: float = 2.0) -> threading.Thread:
    """Give ``engine``'s recommender live trending counts; returns the refreshing thread."""
    target = ArrayTrending(len(engine.bundle.catalog))
    engine.rec.trending = target

    def run() -> None:
        try:
            from recsys.online.feature_store import apply_definitions, get_store
            from recsys.online.trending_store import TrendingReader, TrendingRefresher

            store = get_store(settings=settings)
            apply_definitions(store)
            refresher = TrendingRefresher(TrendingReader(store, engine.bundle.catalog.item_ids), target, every)
        except Exception as exc:  # noqa: BLE001 - no online store: trending stays 0, the rest serves
            log.warning("trending counts unavailable (%s); the ranker reads 0", str(exc)[:200])
            return
        log.info("trending counts: refreshed from the online store every %.0f s", every)
        refresher.start()

    thread = threading.Thread(target=run, name="trending-init", daemon=True)
    thread.start()
    return thread
