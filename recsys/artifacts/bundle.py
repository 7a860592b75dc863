"""The model bundle: one directory per model version, shared by pipeline, registry and servers.

```
manifest.json        format, version, created, protocol, data fingerprint, settings, metrics,
                     index stats, ranker info, files + sha256
items.parquet        catalog (row i = item index i): id, title, genres, year, popularity, ...
users.parquet        user features at the end of training (what Feast materializes)
user_tower.pt        two-tower state_dict (loaded with weights_only=True)
two_tower.json       two-tower shape; user_ids.npy: the user-embedding index
item_embeddings.npy  float32 [n_items, dim]
index.faiss          faiss.write_index output; index.json: kind, nlist, nprobe, measured recall
cooc.npz             next-item co-occurrence matrix (scipy sparse)
ranker.txt           LightGBM text model (feature names inside); ranker.json: importances
feature_stats.json   training histograms per feature (serving-side skew)
```
Loading checks every file and its sha256 and raises :class:`BundleError` naming the problem;
nothing is half-loaded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.features.catalog import Catalog
from recsys.features.distribution import feature_histograms, user_feature_values
from recsys.features.users import USER_FEATURES, UserState, user_states
from recsys.models.cooc import NextItemCooc
from recsys.models.index import IndexStats, load_index, save_index
from recsys.models.ranker import Ranker
from recsys.models.ranker_features import FEATURES
from recsys.models.recommender import RecommenderConfig, TwoStageRecommender
from recsys.models.two_tower import TwoTower

FORMAT_VERSION = 2  # 2: the ranker reads trending counts (item_trend_5m / item_trend_1h)
MANIFEST = "manifest.json"
STATS_SAMPLE_ROWS = 200_000  # ranker training rows the feature histograms are computed on


class BundleError(RuntimeError):
    """A bundle directory is missing, incomplete, corrupted or of another format."""


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _write_models(out: Path, recommender: TwoStageRecommender, user_table: pd.DataFrame,
                  index_stats: IndexStats) -> list[str]:
    """The tables and every model's files; returns their names."""
    recommender.catalog.table.to_parquet(out / "items.parquet", index=False)
    user_table.to_parquet(out / "users.parquet", index=False)
    files = ["items.parquet", "users.parquet"]
    files += recommender.two_tower.save(out)
    files += save_index(recommender.index, index_stats, out)
    if recommender.cooc is not None:
        files += recommender.cooc.save(out)
    if recommender.ranker is not None:
        files += recommender.ranker.save(out)
    return files


def _write_feature_stats(out: Path, user_table: pd.DataFrame, ranker_features: np.ndarray | None) -> str:
    """Training histograms of the user features and (a sample of) the ranker's inputs."""
    stats = {"user": feature_histograms(user_feature_values(user_table))}
    if ranker_features is not None and len(ranker_features):
        rng = np.random.default_rng(0)
        n = min(len(ranker_features), STATS_SAMPLE_ROWS)
        sample = ranker_features[rng.choice(len(ranker_features), n, replace=False)]
        stats["ranker"] = feature_histograms({name: sample[:, j] for j, name in enumerate(FEATURES)})
    (out / "feature_stats.json").write_text(json.dumps(stats))
    return "feature_stats.json"


def save_bundle(
    out_dir: str | Path,
    recommender: TwoStageRecommender,
    user_table: pd.DataFrame,
    index_stats: IndexStats,
    *,
    protocol: str,
    settings: dict[str, Any],
    data_fingerprint: str = "",
    metrics: dict[str, float] | None = None,
    ranker_features: np.ndarray | None = None,
    extra: dict[str, Any] | None = None,
    version: str | None = None,
) -> Path:
    """Write a complete bundle to ``out_dir`` (created; must be empty or absent)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST).exists():
        raise BundleError(f"{out}: already holds a bundle; refusing to overwrite it")
    ranker = recommender.ranker
    if ranker is None:
        raise BundleError("a bundle needs a trained ranker")
    files = _write_models(out, recommender, user_table, index_stats)
    files.append(_write_feature_stats(out, user_table, ranker_features))
    cooc = recommender.cooc
    now = dt.datetime.now(dt.UTC)
    manifest = {
        "format_version": FORMAT_VERSION,
        "version": version or now.strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6],
        "created": now.isoformat(),
        "protocol": protocol,
        "data_fingerprint": data_fingerprint,
        "ref_ts": recommender.catalog.ref_ts,
        "n_items": len(recommender.catalog),
        "n_users": len(user_table),
        "settings": settings,
        "serving": {**recommender.config.manifest(), "cooc_window": cooc.window if cooc else 0,
                    "cooc_last_items": cooc.last_items if cooc else 0},
        "index": asdict(index_stats),
        "ranker": {k: v for k, v in ranker.info.items() if k != "params"},
        "features": {"ranker": list(FEATURES), "user": list(USER_FEATURES)},
        "metrics": metrics or {},
        **(extra or {}),
        "files": {name: _sha256(out / name) for name in files},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=float))
    return out


@dataclass
class Bundle:
    """A loaded bundle: the recommender plus the tables the servers need."""

    path: Path
    manifest: dict
    recommender: TwoStageRecommender
    user_table: pd.DataFrame
    feature_stats: dict
    index_stats: IndexStats

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def catalog(self) -> Catalog:
        return self.recommender.catalog

    def user_states(self) -> dict[int, UserState]:
        return user_states(self.user_table)


def read_manifest(path: str | Path) -> dict:
    p = Path(path) / MANIFEST
    if not p.is_file():
        raise BundleError(f"{Path(path)}: not a model bundle (no {MANIFEST})")
    try:
        manifest = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{p}: not valid JSON ({exc})") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{p}: bundle format {manifest.get('format_version')!r}, this code reads "
                          f"{FORMAT_VERSION} (retrain it: make train)")
    return manifest


def verify_bundle(path: str | Path) -> dict:
    """Check every listed file exists with its sha256; return the manifest."""
    path = Path(path)
    manifest = read_manifest(path)
    for name, digest in manifest["files"].items():
        f = path / name
        if not f.is_file():
            raise BundleError(f"{path}: missing {name}")
        if _sha256(f) != digest:
            raise BundleError(f"{path}: {name} does not match its sha256 in {MANIFEST} (corrupted or replaced)")
    return manifest


def load_bundle(path: str | Path, ranker_threads: int = 0, verify: bool = True) -> Bundle:
    """Load and check a bundle directory."""
    path = Path(path)
    manifest = verify_bundle(path) if verify else read_manifest(path)
    catalog = Catalog(pd.read_parquet(path / "items.parquet"), ref_ts=manifest["ref_ts"])
    tt = TwoTower.load(path, catalog)
    index, stats = load_index(path)
    sv = manifest["serving"]
    cooc = NextItemCooc.load(path, sv["cooc_window"], sv["cooc_last_items"]) if (path / "cooc.npz").exists() else None
    ranker = Ranker.load(path)
    missing = set(FEATURES) ^ set(ranker.booster.feature_name())
    if missing:
        raise BundleError(f"{path}: ranker features differ from this code's: {sorted(missing)}")
    rec = TwoStageRecommender(catalog, tt, index, cooc, ranker, RecommenderConfig.from_manifest(sv, ranker_threads))
    users = pd.read_parquet(path / "users.parquet")
    stats_json = json.loads((path / "feature_stats.json").read_text())
    return Bundle(path, manifest, rec, users, stats_json, stats)
