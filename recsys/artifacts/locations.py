"""Where MLflow keeps things: the local tracking store, the training experiment and its artifact location.

* :func:`local_store`: the file / directory of a local SQLite or file tracking store;
* :func:`artifact_location`: the artifact location a new training experiment
  ``<REGISTERED_MODEL_NAME>-training`` gets: ``MLFLOW_ARTIFACT_ROOT`` when set; else
  ``mlartifacts/`` beside a local store (``sqlite:///<dir>/mlflow.db`` or ``file:<dir>/mlruns``
  -> ``<dir>/mlartifacts``, so the default store keeps ``<RUNS_DIR>/mlartifacts``); else (http(s),
  databricks) the tracking server's own default. Never the working directory: a database store
  without a server (postgresql://...) needs ``MLFLOW_ARTIFACT_ROOT``;
* :func:`experiment_id`: that experiment, created there; an existing experiment whose location
  differs from a set ``MLFLOW_ARTIFACT_ROOT`` is an error (:class:`ArtifactLocationError`), not a
  silent write elsewhere;
* :func:`local_path`: the local directory of a file: URI / absolute path (artifact sources).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from recsys.config import Settings

log = logging.getLogger(__name__)


class ArtifactLocationError(ValueError):
    """The training experiment's artifact location is not the one configured, or cannot be chosen."""


# Tracking stores that are a database without a server: MLflow's own artifact default for them is
# ./mlruns of the working directory.
_DATABASE_SCHEMES = ("postgresql", "postgres", "mysql", "mssql", "oracle")
# Tracking URIs without "scheme:" that are not a path.
_BARE_SERVER_URIS = ("databricks", "databricks-uc", "uc")


def local_store(tracking_uri: str) -> Path | None:
    """The file of a local SQLite store / the directory of a local file store (absolute); None
    for any other tracking URI (server, remote database, in-memory SQLite)."""
    from urllib.parse import unquote, urlparse

    if tracking_uri.startswith("sqlite:"):
        # sqlite:///relative.db, sqlite:////absolute.db (SQLAlchemy); query options after "?"
        path = tracking_uri.removeprefix("sqlite:").removeprefix("//").split("?", 1)[0]
        path = path[1:] if path.startswith("/") else path
        return None if path in ("", ":memory:") else Path(unquote(path)).expanduser().resolve()
    u = urlparse(tracking_uri)
    if u.scheme == "file":
        return Path(unquote(u.path)).expanduser().resolve()
    if u.scheme == "" and tracking_uri not in _BARE_SERVER_URIS:  # a plain path: a file store
        return Path(tracking_uri).expanduser().resolve()
    return None


def _location_uri(location: str) -> str:
    """``location`` as MLflow stores it: a plain local path becomes an absolute file: URI."""
    from urllib.parse import unquote, urlparse

    u = urlparse(location)
    if u.scheme in ("", "file"):
        path = Path(unquote(u.path)) if u.scheme == "file" else Path(location)
        return path.expanduser().resolve().as_uri()
    return location.rstrip("/")


def artifact_location(settings: Settings) -> str | None:
    """The artifact location a new training experiment gets: MLFLOW_ARTIFACT_ROOT; else
    ``mlartifacts/`` beside a local SQLite / file store; else None (a tracking server's default).
    ArtifactLocationError for a store whose default would be the working directory."""
    from urllib.parse import urlparse

    if settings.mlflow_artifact_root:
        return _location_uri(settings.mlflow_artifact_root)
    uri = settings.tracking_uri()
    store = local_store(uri)
    if store is not None:
        return (store.parent / "mlartifacts").as_uri()
    scheme = (urlparse(uri).scheme or uri).split("+", 1)[0].lower()
    if scheme in (*_DATABASE_SCHEMES, "sqlite"):  # sqlite here: in memory
        raise ArtifactLocationError(
            f"MLFLOW_TRACKING_URI {uri} is a database without a tracking server: MLflow would put the artifacts "
            "under ./mlruns of the working directory. Set MLFLOW_ARTIFACT_ROOT (s3://bucket/path, file:///dir)")
    return None  # a tracking server (http(s), databricks) or a plugin store: its own default


def local_path(uri: str) -> Path | None:
    """The local path of a file: URI or an absolute path; None for any other URI (s3://, http(s), ...)."""
    from urllib.parse import unquote, urlparse

    u = urlparse(uri)
    if u.scheme == "file":
        return Path(unquote(u.path))
    if u.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def _same_location(a: str, b: str) -> bool:
    return _location_uri(a) == _location_uri(b)


def experiment_id(c: MlflowClient, settings: Settings) -> str:
    """The training experiment, created with :func:`artifact_location`. An existing experiment
    keeps its location: ArtifactLocationError when MLFLOW_ARTIFACT_ROOT names another one."""
    name = f"{settings.registered_model_name}-training"
    exp = c.get_experiment_by_name(name)
    root = settings.mlflow_artifact_root
    if exp is not None:
        if root and not _same_location(exp.artifact_location, root):
            raise ArtifactLocationError(
                f"MLflow experiment {name!r} ({settings.tracking_uri()}) stores its artifacts at "
                f"{exp.artifact_location}, but MLFLOW_ARTIFACT_ROOT is {root}: an experiment's artifact location "
                f"cannot change. Set MLFLOW_ARTIFACT_ROOT={exp.artifact_location}, or use another experiment "
                "(REGISTERED_MODEL_NAME) or tracking store")
        if not root:
            try:
                expected = artifact_location(settings)
            except ArtifactLocationError:
                expected = None
            if expected is not None and not _same_location(exp.artifact_location, expected):
                log.warning("MLflow experiment %r keeps the artifact location it was created with, %s (the default "
                            "for this store is %s); set MLFLOW_ARTIFACT_ROOT to choose", name,
                            exp.artifact_location, expected)
        return exp.experiment_id
    location = artifact_location(settings)
    local = local_path(location) if location else None
    if local is not None:
        local.mkdir(parents=True, exist_ok=True)
    log.info("creating MLflow experiment %r, artifacts at %s", name, location or "the tracking server's default")
    return c.create_experiment(name, artifact_location=location)
