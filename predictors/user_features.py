"""Online user features for the transformer: Feast (default) or the bundle's user table.

Adapter over :mod:`recsys.online` (``get_store``, ``OnlineUserReader`` -- the same rows as
``get_user_features`` with less per-call overhead -- and ``write_user_rows``, for the healer):
the store and reader are built once at load time, never per request. The ``bundle`` source keeps
the model version's ``users.parquet`` in memory plus the events received since start-up; it
needs no Feast (fast start-up, used by tests and the benchmark's "no feature store"
configuration). An event changes a row through :func:`recsys.features.users.append_event` in
both: the ``bundle`` source applies it here, the Feast rows are updated by the stream consumer
(:mod:`recsys.online.consumer`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.features.users import UserState, append_event

log = logging.getLogger(__name__)


class FeatureStoreDown(RuntimeError):
    """The online store could not be read or written."""


class BundleFeatures:
    """User rows from a bundle's users.parquet, updated in memory by events."""

    name = "bundle"
    remote = False  # in memory: no I/O, called directly

    def __init__(self, bundle_dir: str | Path, history_len: int):
        table = pd.read_parquet(Path(bundle_dir) / "users.parquet")
        self.rows = {int(r["user_id"]): UserState.from_row(r).to_row() for r in table.to_dict("records")}
        self.history_len = history_len

    def get(self, user_ids: list[int]) -> dict[int, dict | None]:
        return {int(u): self.rows.get(int(u)) for u in user_ids}

    def apply(self, event: Any) -> dict:
        """An event (:class:`recsys.online.events.Event`) applied to the user's row in memory."""
        row = self.rows.get(int(event.user_id))
        if event.event_type == "impression":
            return row or {}
        state = append_event(UserState.from_row(row) if row else None, event.user_id, event.item_id, event.timestamp,
                             self.history_len, event_type=event.event_type, value=event.value)
        self.rows[int(event.user_id)] = new = state.to_row()
        return new


class FeastFeatures:
    """Feast online store (SQLite embedded, or Redis when REDIS_URL is set).

    The transformer calls it through its ``feature_store`` dependency (deadline + circuit
    breaker): :meth:`aget` where the store reads asynchronously (Redis), else :meth:`get` on the
    dependency's thread pool.
    """

    name = "feast"
    remote = True

    def __init__(self, bundle_dir: str | Path | None, history_len: int, materialize: str = "auto",
                 repo_path=None, redis_url=None, project=None):
        from recsys.online import feature_store, user_rows  # they import feast lazily, inside their functions

        self.rows = user_rows
        self.history_len = history_len
        self.store = feature_store.get_store(repo_path=repo_path, redis_url=redis_url, project=project)
        feature_store.apply_definitions(self.store)  # the registry is a local file: works with the store down
        if bundle_dir is not None and materialize != "never":
            self._materialize(bundle_dir, always=materialize == "always")
        self.online_store = self.store.config.online_store.type
        self.reader = user_rows.OnlineUserReader(self.store)

    def _materialize(self, bundle_dir: str | Path, always: bool) -> None:
        """Push the bundle's rows online when the store lacks them; an unreachable store is not a
        reason not to start (answers degrade, and the transformer's healer refills the store)."""
        from recsys.online import feature_store

        probe = pd.read_parquet(Path(bundle_dir) / "users.parquet", columns=["user_id"])["user_id"]
        sample = [int(probe.iloc[0]), int(probe.iloc[-1])] if len(probe) else []
        try:
            have = self.rows.get_user_features(self.store, sample) if sample else {}
            if always or not have or any(v is None for v in have.values()):
                log.info("materializing %s into the online store", bundle_dir)
                feature_store.materialize_bundle(self.store, bundle_dir)
        except Exception as exc:  # noqa: BLE001 - the store is down at start: degrade, never crash
            log.warning("online store unreachable at start (%s): answers degrade until it is back, "
                        "then the model version's rows are refilled", str(exc)[:200])

    @property
    def reads_async(self) -> bool:
        return self.reader.reads_async

    def get(self, user_ids: list[int]) -> dict[int, dict | None]:
        try:
            return self.reader.get(list(user_ids))
        except Exception as exc:  # noqa: BLE001 - any online-store failure degrades, never 5xx
            raise FeatureStoreDown(str(exc)) from exc

    async def aget(self, user_ids: list[int]) -> dict[int, dict | None]:
        return await self.reader.aget(list(user_ids))

    def write_rows(self, rows: list[dict]) -> None:
        """Write whole user rows (the healer refilling rows the store lost)."""
        self.rows.write_user_rows(self.store, rows)
