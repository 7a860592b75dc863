"""The Feast feature store: configuration per environment, materialization, online reads/writes.

The definitions live in ``feature_repo/features.py`` (features as code); the configuration in
``feature_repo/feature_store.yaml`` (embedded SQLite online store) and
``feature_repo/feature_store.redis.yaml`` (Redis, chosen when ``REDIS_URL`` is set).
:func:`get_store` reads the YAML and places registry, SQLite file and offline parquet under
``RUNS_DIR/feast/<project>/`` so nothing depends on this machine's paths and tests can use
their own directory and project.

Public API (used by the pipeline and by the serving transformer)::

    store = get_store()                                   # FeatureStore for this environment
    materialize_bundle(store, bundle_dir)                 # apply + offline parquet + online

Reading and writing user rows online: :mod:`recsys.online.user_rows`.
``import feast`` takes several seconds: it happens inside these functions only.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import pandas as pd

from recsys.features.items import ITEM_COLUMNS
from recsys.features.users import USER_FEATURES

if TYPE_CHECKING:  # pragma: no cover
    from feast import FeatureStore

    from recsys.config import Settings

log = logging.getLogger(__name__)

USER_VIEW = "user_features"
ITEM_VIEW = "item_features"
TRENDING_VIEW = "item_trending"
TIMESTAMP = "event_timestamp"
_DATA_DIR_ATTR = "recsys_data_dir"


class FeatureStoreError(RuntimeError):
    """The feature repo or its configuration is missing or invalid."""


def redis_connection_string(redis_url: str, timeout: float | None = None) -> str:
    """``redis://[:password@]host:port/db`` -> Feast's ``host:port,db=N[,password=...][,ssl=true]``
    (``timeout``: socket timeouts in seconds, so a hung Redis fails fast instead of blocking)."""
    u = urlparse(redis_url)
    if u.scheme not in ("redis", "rediss"):
        raise FeatureStoreError(f"REDIS_URL {redis_url!r}: expected redis://[:password@]host:port/db")
    parts = [f"{u.hostname or 'localhost'}:{u.port or 6379}"]
    db = (u.path or "/").lstrip("/") or "0"
    parts.append(f"db={int(db)}")
    if u.password:
        parts.append(f"password={unquote(u.password)}")
    if u.username and u.username != "default":
        parts.append(f"username={unquote(u.username)}")
    if u.scheme == "rediss":
        parts.append("ssl=true")
    if timeout:
        parts += [f"socket_timeout={timeout:g}", f"socket_connect_timeout={timeout:g}"]
    return ",".join(parts)


def resolve_repo_path(repo_path: str | Path | None = None, settings: Settings | None = None) -> Path:
    """FEAST_REPO_PATH (relative to the working directory, else to the project root)."""
    from recsys.config import get_settings

    path = Path(repo_path) if repo_path is not None else (settings or get_settings()).feast_repo_path
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, Path(__file__).resolve().parents[2] / path]
    for c in candidates:
        if (c / "features.py").is_file():
            return c.resolve()
    raise FeatureStoreError(f"no Feast feature repo (features.py) at {' or '.join(map(str, candidates))}")


def _load_definitions_module(repo: Path):
    spec = importlib.util.spec_from_file_location("recsys_feature_repo_features", repo / "features.py")
    if spec is None or spec.loader is None:  # pragma: no cover
        raise FeatureStoreError(f"{repo}/features.py cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def repo_config(
    repo_path: str | Path | None = None,
    redis_url: str | None = None,
    project: str | None = None,
    state_dir: str | Path | None = None,
    settings: Settings | None = None,
):
    """The :class:`feast.RepoConfig` of this environment (YAML file + overrides)."""
    import os

    import yaml
    from feast.repo_config import RepoConfig

    from recsys.config import get_settings

    s = settings or get_settings()
    repo = resolve_repo_path(repo_path, s)
    redis_url = redis_url if redis_url is not None else s.redis_url
    project = project or s.feast_project
    yaml_file = repo / ("feature_store.redis.yaml" if redis_url else "feature_store.yaml")
    if not yaml_file.is_file():
        raise FeatureStoreError(f"{yaml_file}: missing")
    text = yaml_file.read_text()
    if redis_url:
        text = text.replace(
            "${REDIS_CONNECTION_STRING}", redis_connection_string(redis_url, s.feature_store_timeout_seconds)
        )
    raw = yaml.safe_load(os.path.expandvars(text))
    state = Path(state_dir) if state_dir is not None else s.runs_dir / "feast" / project
    state = state.resolve()
    state.mkdir(parents=True, exist_ok=True)
    raw["project"] = project
    raw["registry"] = str(state / "registry.db")
    if raw.get("online_store", {}).get("type") == "sqlite":
        raw["online_store"]["path"] = str(state / "online_store.db")
    raw["repo_path"] = repo
    try:
        return RepoConfig(**raw)
    except Exception as exc:  # pydantic validation: name the file
        raise FeatureStoreError(f"{yaml_file}: invalid Feast configuration: {exc}") from exc


def get_store(
    repo_path: str | Path | None = None,
    redis_url: str | None = None,
    project: str | None = None,
    data_dir: str | Path | None = None,
    settings: Settings | None = None,
) -> FeatureStore:
    """A :class:`feast.FeatureStore` for this environment.

    ``redis_url`` (default ``REDIS_URL``) selects the Redis online store, else embedded SQLite;
    ``project`` defaults to ``FEAST_PROJECT``; ``data_dir`` (offline parquet) defaults to
    ``RUNS_DIR/feast/<project>/data``.
    """
    from feast import FeatureStore

    from recsys.config import get_settings

    s = settings or get_settings()
    config = repo_config(repo_path, redis_url, project, settings=s)
    store = FeatureStore(config=config)
    state = Path(config.registry.path if hasattr(config.registry, "path") else config.registry).parent
    setattr(store, _DATA_DIR_ATTR, Path(data_dir).resolve() if data_dir is not None else state / "data")
    return store


def data_dir_of(store: FeatureStore) -> Path:
    """Where ``store``'s offline parquet sources live."""
    return getattr(store, _DATA_DIR_ATTR)


def apply_definitions(store: FeatureStore, archive_dir: str | Path | None = None) -> list:
    """Register the repo's entities, views and service (offline sources under the store's data
    dir; the event archive as the ``events`` source, default EVENT_ARCHIVE_DIR)."""
    from recsys.config import get_settings

    if store.config.repo_path is None:
        raise FeatureStoreError(f"feature store of project {store.project} has no repo_path")
    module = _load_definitions_module(Path(store.config.repo_path))
    archive = Path(archive_dir) if archive_dir is not None else get_settings().archive_dir()
    objects = module.definitions(data_dir_of(store), archive.resolve())
    store.apply(objects)
    return objects


def offline_tables(
    users: pd.DataFrame, items: pd.DataFrame, event_time: dt.datetime
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """User / item tables as Feast offline sources: one row per entity at ``event_time``."""
    u = users[["user_id", *USER_FEATURES]].copy()
    for col in ("recent_items", "seen_items"):
        u[col] = u[col].map(lambda v: [int(x) for x in v])
    u["genre_affinity"] = u["genre_affinity"].map(lambda v: [float(x) for x in v])
    i = items[list(ITEM_COLUMNS)].copy()
    ts = (
        pd.Timestamp(event_time).tz_convert("UTC")
        if pd.Timestamp(event_time).tzinfo
        else pd.Timestamp(event_time, tz="UTC")
    )
    u[TIMESTAMP] = ts
    i[TIMESTAMP] = ts
    return u, i


def write_offline(
    users: pd.DataFrame, items: pd.DataFrame, data_dir: str | Path, event_time: dt.datetime | None = None
) -> dict[str, Path]:
    """Write the offline parquet sources the feature views read (``users.parquet``, ``items.parquet``)."""
    event_time = event_time or dt.datetime.now(dt.UTC)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    u, i = offline_tables(users, items, event_time)
    paths = {"users": data_dir / "users.parquet", "items": data_dir / "items.parquet"}
    u.to_parquet(paths["users"], index=False)
    i.to_parquet(paths["items"], index=False)
    return paths


def materialize_bundle(
    store: FeatureStore,
    bundle_dir: str | Path | None = None,
    *,
    users: pd.DataFrame | None = None,
    items: pd.DataFrame | None = None,
    event_time: dt.datetime | None = None,
) -> dict[str, Any]:
    """Apply the definitions, write the offline parquet and push the latest values online.

    The tables come from ``bundle_dir`` (``users.parquet``, ``items.parquet``) or are given.
    Every row gets ``event_time`` (default now) as its event timestamp, so the materialization
    window [event_time - 1 day, now + 1 min] holds all of them.
    """
    t = time.perf_counter()
    if bundle_dir is not None:
        users = pd.read_parquet(Path(bundle_dir) / "users.parquet") if users is None else users
        items = pd.read_parquet(Path(bundle_dir) / "items.parquet") if items is None else items
    if users is None or items is None:
        raise ValueError("materialize_bundle needs bundle_dir or both users and items tables")
    event_time = event_time or dt.datetime.now(dt.UTC)
    paths = write_offline(users, items, data_dir_of(store), event_time)
    apply_definitions(store)
    end = max(dt.datetime.now(dt.UTC), event_time) + dt.timedelta(minutes=1)
    store.materialize(start_date=event_time - dt.timedelta(days=1), end_date=end, feature_views=[USER_VIEW, ITEM_VIEW])
    return {
        "project": store.project,
        "online_store": store.config.online_store.type,
        "users": int(len(users)),
        "items": int(len(items)),
        "offline": {k: str(v) for k, v in paths.items()},
        "event_time": event_time.isoformat(),
        "seconds": time.perf_counter() - t,
    }


def teardown(store: FeatureStore) -> None:
    """Remove the project's online data (Redis keys / SQLite tables) and registry entries."""
    store.teardown()
