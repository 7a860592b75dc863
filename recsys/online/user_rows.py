"""Online user rows in the Feast store: read them, write them.

The rows hold ``user_id`` + :data:`recsys.features.users.USER_FEATURES`, exactly the training
user table's columns (what :func:`recsys.online.feature_store.materialize_bundle` pushed).
Events change them in one place: the stream consumer (:mod:`recsys.online.consumer`) reads the
rows, applies :func:`recsys.features.users.append_event` and writes them back.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pandas as pd

from recsys.features.users import USER_FEATURES
from recsys.online.feature_store import TIMESTAMP, USER_VIEW

if TYPE_CHECKING:  # pragma: no cover
    from feast import FeatureStore


def _clean_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in ("recent_items", "seen_items"):
        return [int(x) for x in value]
    if name == "genre_affinity":
        return [float(x) for x in value]
    if name == "mean_rating":
        return float(value)
    if name == "gender":
        return str(value)
    return int(value)


def get_user_features(store: FeatureStore, user_ids: list[int]) -> dict[int, dict | None]:
    """Online user rows by id (keys ``user_id`` + USER_FEATURES; ``None`` for unknown users).

    One ``get_online_features`` call for all ids.
    """
    ids = [int(u) for u in user_ids]
    if not ids:
        return {}
    resp = store.get_online_features(
        features=[f"{USER_VIEW}:{name}" for name in USER_FEATURES],
        entity_rows=[{"user_id": u} for u in ids],
    ).to_dict()
    return {u: _user_row(u, {name: resp[name][row] for name in USER_FEATURES}) for row, u in enumerate(ids)}


def _user_row(user_id: int, values: dict[str, Any]) -> dict | None:
    """An online user row from its raw values (``None`` when the store has nothing for the user)."""
    if all(v is None for v in values.values()):
        return None
    return {"user_id": user_id, **{name: _clean_value(name, v) for name, v in values.items()}}


_PLAIN_KINDS = frozenset(
    {
        "int32_val",
        "int64_val",
        "float_val",
        "double_val",
        "string_val",
        "bool_val",
        "int32_list_val",
        "int64_list_val",
        "float_list_val",
        "double_list_val",
        "string_list_val",
        "bool_list_val",
    }
)


def _python_value(value: Any) -> Any:
    """A Feast ValueProto as Python: scalars and lists of the user view's kinds directly, anything
    else through Feast's own converter."""
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    if kind not in _PLAIN_KINDS:
        from feast.type_map import feast_value_type_to_python_type

        return feast_value_type_to_python_type(value)
    v = getattr(value, kind)
    return list(v.val) if kind.endswith("_list_val") else v


class OnlineUserReader:
    """The serving hot path of :func:`get_user_features`: the same rows, read with one call of the
    Feast provider's ``online_read`` (the online-store interface Feast's own feature server
    uses). ``FeatureStore.get_online_features`` resolves feature references, validates entity
    rows and builds a response protobuf on every call, Python this path skips (docs/serving.md
    has the measurement). No TTL or on-demand transformations are involved: the
    user view has neither (its TTL is 100 years, and Feast does not apply it online).
    """

    def __init__(self, store: FeatureStore):
        from feast.infra.provider import get_provider

        self.config = store.config
        self.view = store.get_feature_view(USER_VIEW)
        self.provider = get_provider(store.config)
        self.features = list(USER_FEATURES)

    @property
    def reads_async(self) -> bool:
        """Whether the online store has an asynchronous read (Redis does; SQLite does not)."""
        from feast.infra.online_stores.online_store import OnlineStore

        store = self.provider.online_store
        return type(store).online_read_async is not OnlineStore.online_read_async

    def _keys(self, ids: list[int]) -> list:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        return [EntityKey(join_keys=["user_id"], entity_values=[Value(int64_val=u)]) for u in ids]

    def _rows(self, ids: list[int], rows: list) -> dict[int, dict | None]:
        return {
            u: _user_row(u, {n: _python_value(values[n]) if values and n in values else None for n in self.features})
            for u, (_, values) in zip(ids, rows)
        }

    def get(self, user_ids: list[int]) -> dict[int, dict | None]:
        ids = [int(u) for u in user_ids]
        if not ids:
            return {}
        # A fresh list per call: the Redis store appends its timestamp field to the one it is given.
        return self._rows(ids, self.provider.online_read(self.config, self.view, self._keys(ids), list(self.features)))

    async def aget(self, user_ids: list[int]) -> dict[int, dict | None]:
        """:meth:`get` through the store's asynchronous client (only when :attr:`reads_async`)."""
        ids = [int(u) for u in user_ids]
        if not ids:
            return {}
        rows = await self.provider.online_read_async(self.config, self.view, self._keys(ids), list(self.features))
        return self._rows(ids, rows)


def write_user_rows(store: FeatureStore, rows: list[dict], event_time: dt.datetime | None = None) -> None:
    """Write full user rows (``user_id`` + USER_FEATURES) to the online store."""
    ts = pd.Timestamp(event_time or dt.datetime.now(dt.UTC))
    df = pd.DataFrame([{k: r[k] for k in ("user_id", *USER_FEATURES)} for r in rows])
    df[TIMESTAMP] = ts if ts.tzinfo else ts.tz_localize("UTC")
    store.write_to_online_store(USER_VIEW, df)
