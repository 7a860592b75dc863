"""MovieLens-1M in the GroupLens format: load a local directory or download ml-1m.zip.

Files are ``'::'``-separated and latin-1 encoded:

* ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``
* ``movies.dat``:  ``MovieID::Title (Year)::Genre|Genre``
* ``users.dat``:   ``UserID::Gender::Age::Occupation::Zip-code``

Malformed input raises :class:`DataFormatError` naming the file and the line. The tables come
back as :class:`InteractionData` (interactions, items, users), the container every later stage
reads.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
    "Western",
)
AGES = (1, 18, 25, 35, 45, 50, 56)  # the GroupLens age buckets (users.dat)
FILES = {
    "ratings.dat": ("user_id", "item_id", "rating", "timestamp"),
    "movies.dat": ("item_id", "title", "genres"),
    "users.dat": ("user_id", "gender", "age", "occupation", "zip"),
}
_YEAR = re.compile(r"\((\d{4})\)\s*$")


class DataFormatError(ValueError):
    """The data directory or one of its files is missing or malformed."""


@dataclass(frozen=True)
class InteractionData:
    """Interactions with their item and user tables, as pandas frames."""

    interactions: pd.DataFrame  # user_id, item_id, rating, timestamp (int64)
    items: pd.DataFrame  # item_id, title, genres (str, '|'-joined), year (int, 0 if unknown)
    users: pd.DataFrame  # user_id, gender, age, occupation, zip

    def fingerprint(self) -> str:
        """Short content hash of the interactions, recorded in model manifests."""
        h = hashlib.sha256()
        for col in ("user_id", "item_id", "rating", "timestamp"):
            h.update(np.ascontiguousarray(self.interactions[col].fillna(-1).to_numpy(np.int64)).tobytes())
        return h.hexdigest()[:16]


def _read_table(path: Path) -> list[list[str]]:
    name = path.name
    if not path.is_file():
        raise DataFormatError(f"{path}: file missing (a GroupLens ml-1m directory holds {', '.join(FILES)})")
    n_fields = len(FILES[name])
    rows: list[list[str]] = []
    with path.open("r", encoding="latin-1", newline="") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split("::")
            if len(parts) != n_fields:
                raise DataFormatError(
                    f"{path}:{lineno}: expected {n_fields} '::'-separated fields "
                    f"({'::'.join(FILES[name])}), found {len(parts)}: {line[:80]!r}"
                )
            rows.append(parts)
    if not rows:
        raise DataFormatError(f"{path}: file is empty")
    return rows


def _to_int(df: pd.DataFrame, cols: tuple[str, ...], path: Path) -> pd.DataFrame:
    for col in cols:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataFormatError(
                f"{path}:{int(df['_line'].iloc[i])}: field {col!r} is not an integer: {df[col].iloc[i]!r}"
            )
        df[col] = values.astype(np.int64)
    return df


def _frame(path: Path) -> pd.DataFrame:
    rows = _read_table(path)
    df = pd.DataFrame(rows, columns=list(FILES[path.name]))
    df["_line"] = np.arange(1, len(df) + 1)
    return df


def load_movielens(data_dir: str | Path) -> InteractionData:
    """Load a GroupLens ml-1m directory (``ratings.dat``, ``movies.dat``, ``users.dat``)."""
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DataFormatError(
            f"{data_dir}: data directory does not exist (set DATA_DIR to a GroupLens ml-1m directory)")

    ratings_path = data_dir / "ratings.dat"
    ratings = _to_int(_frame(ratings_path), ("user_id", "item_id", "rating", "timestamp"), ratings_path)
    out_of_range = ~ratings["rating"].between(1, 5)
    if out_of_range.any():
        i = int(np.flatnonzero(out_of_range.to_numpy())[0])
        raise DataFormatError(f"{ratings_path}:{int(ratings['_line'].iloc[i])}: rating must be 1-5, "
                              f"found {ratings['rating'].iloc[i]}")

    movies_path = data_dir / "movies.dat"
    movies = _to_int(_frame(movies_path), ("item_id",), movies_path)
    movies["year"] = movies["title"].str.extract(_YEAR, expand=False).fillna("0").astype(np.int64)
    unknown = sorted({g for gs in movies["genres"] for g in gs.split("|") if g} - set(GENRES))
    if unknown:
        log.warning("%s: genres outside the ml-1m list are ignored: %s", movies_path, unknown[:5])

    users_path = data_dir / "users.dat"
    users = _to_int(_frame(users_path), ("user_id", "age", "occupation"), users_path)

    missing_items = np.setdiff1d(ratings["item_id"].unique(), movies["item_id"].to_numpy())
    if missing_items.size:
        raise DataFormatError(f"{ratings_path}: {missing_items.size} movie ids absent from movies.dat "
                              f"(e.g. {missing_items[:5].tolist()})")
    missing_users = np.setdiff1d(ratings["user_id"].unique(), users["user_id"].to_numpy())
    if missing_users.size:
        raise DataFormatError(f"{ratings_path}: {missing_users.size} user ids absent from users.dat "
                              f"(e.g. {missing_users[:5].tolist()})")

    return InteractionData(
        interactions=ratings.drop(columns="_line").reset_index(drop=True),
        items=movies.drop(columns="_line").reset_index(drop=True),
        users=users.drop(columns="_line").reset_index(drop=True),
    )


def _md5(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "md5").hexdigest()


def download_movielens(url: str, md5: str, cache_dir: str | Path) -> Path:
    """Download ml-1m.zip (or copy it from a ``file://`` URL), verify its md5, unpack it.

    Returns the directory holding the ``.dat`` files. A finished download is reused.
    """
    cache_dir = Path(cache_dir).expanduser()
    target = cache_dir / f"ml-1m-{md5[:8]}"
    if (target / "ratings.dat").is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        archive = Path(tmp) / "ml-1m.zip"
        log.info("downloading %s", url)
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, archive.open("wb") as fh:
                shutil.copyfileobj(resp, fh)
        except OSError as exc:
            raise DataFormatError(f"could not download {url}: {exc}; set DATA_DIR=<a local GroupLens ml-1m "
                                  "directory> or DATA_URL=file:///path/to/ml-1m.zip") from exc
        got = _md5(archive)
        if got != md5:
            raise DataFormatError(f"{url}: md5 mismatch, expected {md5}, got {got}; refusing to use it")
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        inner = next((p.parent for p in Path(tmp).rglob("ratings.dat")), None)
        if inner is None:
            raise DataFormatError(f"{url}: archive has no ratings.dat")
        shutil.move(str(inner), target)
    return target


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """``data_dir`` if given, else ``DATA_DIR``, else a verified download of ml-1m."""
    from recsys.config import get_settings

    s = get_settings()
    chosen = data_dir or s.data_dir
    if chosen:
        return Path(chosen).expanduser()
    return download_movielens(s.data_url, s.data_md5, s.cache_dir)
