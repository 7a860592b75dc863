"""Online user features for the transformer: Feast (default) or the bundle's user table.

Adapter over :mod:`recsys.feature_store` (``get_store``, ``OnlineUserReader`` -- the same rows as
``get_user_features`` with less per-call overhead -- and ``append_user_event``): the store and
reader are built once at load time, never per request. The
``bundle`` source keeps the model version's ``users.parquet`` in memory plus the events
received since start-up; it needs no Feast (fast start-up, used by tests and the benchmark's
"no feature store" configuration).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from recsys.features import USER_FEATURES, UserState

log = logging.getLogger(__name__)


class FeatureStoreDown(RuntimeError):
    """The online store could not be read or written."""


class BundleFeatures:
    """User rows from a bundle's users.parquet, updated in memory by events."""

    name = "bundle"

    def __init__(self, bundle_dir: str | Path, history_len: int = 50):
        table = pd.read_parquet(Path(bundle_dir) / "users.parquet")
        self.rows = {int(r["user_id"]): UserState.from_row(r).to_row() for r in table.to_dict("records")}
        self.history_len = history_len

    def get(self, user_ids: list[int]) -> dict[int, dict | None]:
        return {int(u): self.rows.get(int(u)) for u in user_ids}

    def append(self, user_id: int, item_id: int, timestamp: int) -> dict:
        row = self.rows.get(int(user_id))
        st = UserState.from_row(row) if row else UserState(user_id=int(user_id), first_ts=timestamp, last_ts=timestamp)
        st.recent_items = (st.recent_items + [int(item_id)])[-self.history_len:]
        if int(item_id) not in st.seen_items:
            st.seen_items = st.seen_items + [int(item_id)]
        st.n_ratings += 1
        st.last_ts = max(st.last_ts, int(timestamp))
        self.rows[int(user_id)] = new = st.to_row()
        return new


class FeastFeatures:
    """Feast online store (SQLite embedded, or Redis when REDIS_URL is set)."""

    name = "feast"

    def __init__(self, bundle_dir: str | Path | None, history_len: int = 50, materialize: str = "auto",
                 repo_path=None, redis_url=None, project=None):
        from recsys import feature_store as fs  # imports feast lazily inside its functions

        self.fs = fs
        self.history_len = history_len
        self.store = fs.get_store(repo_path=repo_path, redis_url=redis_url, project=project)
        if bundle_dir is not None and materialize != "never":
            probe = pd.read_parquet(Path(bundle_dir) / "users.parquet", columns=["user_id"])["user_id"]
            sample = [int(probe.iloc[0]), int(probe.iloc[-1])] if len(probe) else []
            have = None
            try:
                have = self.fs.get_user_features(self.store, sample) if sample else {}
            except Exception as exc:  # noqa: BLE001 - registry not applied yet
                log.info("feature store not materialized yet (%s)", exc)
            if materialize == "always" or not have or any(v is None for v in have.values()):
                log.info("materializing %s into the online store", bundle_dir)
                self.fs.materialize_bundle(self.store, bundle_dir)
        self.online_store = self.store.config.online_store.type
        self.reader = fs.OnlineUserReader(self.store)

    def get(self, user_ids: list[int]) -> dict[int, dict | None]:
        try:
            return self.reader.get(list(user_ids))
        except Exception as exc:  # noqa: BLE001 - any online-store failure degrades, never 5xx
            raise FeatureStoreDown(str(exc)) from exc

    def append(self, user_id: int, item_id: int, timestamp: int) -> dict:
        try:
            return self.fs.append_user_event(self.store, user_id, item_id, timestamp, self.history_len)
        except Exception as exc:  # noqa: BLE001
            raise FeatureStoreDown(str(exc)) from exc


NUMERIC_SKEW = ("n_ratings", "mean_rating", "age", "occupation", "n_recent")


def skew_values(row: dict) -> dict[str, float]:
    """The numeric user features compared with training histograms (see recsys.bundle.user_feature_values)."""
    return {"n_ratings": float(row.get("n_ratings") or 0), "mean_rating": float(row.get("mean_rating") or 0.0),
            "age": float(row.get("age") or 0), "occupation": float(row.get("occupation") or 0),
            "n_recent": float(len(row.get("recent_items") or []))}


__all__ = ["BundleFeatures", "FeastFeatures", "FeatureStoreDown", "skew_values", "USER_FEATURES"]
