"""Interaction data from any supported source, and the event archive merged into it.

:func:`load_data` reads a directory holding either GroupLens files (``ratings.dat``,
``movies.dat``, ``users.dat``: :mod:`recsys.data.movielens`) or a team's own log:

* ``interactions.parquet`` or ``.csv`` (required): ``user_id``, ``item_id`` (non-negative
  integers), ``timestamp`` (epoch seconds or a date-time); optional ``event_type`` (one of
  :data:`EVENT_TYPES`; default ``rating`` where a rating is given, else ``click``), ``rating``
  (1..5), ``progress`` (0..1, for watch), ``position`` (rank shown, 0 = first).
* ``items.parquet`` or ``.csv`` (required): ``item_id``; optional ``title``, ``genres``
  (``|``-joined), ``year``.
* ``users.parquet`` or ``.csv`` (optional): ``user_id``; optional ``gender``, ``age``,
  ``occupation``.

A bad value raises :class:`~recsys.data.movielens.DataFormatError` naming the file, the row
(1-based, as a spreadsheet counts data rows) and the column. :func:`merge_events` adds the
archived feedback events (:mod:`recsys.online.archive`) before a cut-off to the interactions.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.movielens import DataFormatError, InteractionData, load_movielens

log = logging.getLogger(__name__)

EVENT_TYPES: tuple[str, ...] = ("view", "click", "add_to_list", "rating", "watch", "purchase", "skip", "impression")
NOT_INTERACTIONS = ("impression",)  # logged for exposure (A/B analysis), never trained on
INTERACTION_COLUMNS = ("user_id", "item_id", "rating", "timestamp", "event_type", "progress", "position")


def _find(data_dir: Path, stem: str, required: bool) -> Path | None:
    for ext in (".parquet", ".csv"):
        if (data_dir / f"{stem}{ext}").is_file():
            return data_dir / f"{stem}{ext}"
    if required:
        raise DataFormatError(f"{data_dir}: {stem}.parquet or {stem}.csv missing (an interaction log directory "
                              "holds interactions.parquet|csv and items.parquet|csv, users optional)")
    return None


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many types for a broken file
        raise DataFormatError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc


def _fail(path: Path, df: pd.DataFrame, bad: np.ndarray, col: str, what: str) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(f"{path}: row {i + 1}, column {col!r}: {what}, found {df[col].iloc[i]!r}")


def _ids(path: Path, df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df:
        raise DataFormatError(f"{path}: column {col!r} missing (columns: {', '.join(map(str, df.columns))})")
    values = pd.to_numeric(df[col], errors="coerce")
    whole = values.notna() & (values == np.floor(values.fillna(0))) & (values >= 0)
    _fail(path, df, ~whole.to_numpy(), col, "expected a non-negative integer")
    return values.astype(np.int64)


def _timestamps(path: Path, df: pd.DataFrame) -> pd.Series:
    if "timestamp" not in df:
        raise DataFormatError(f"{path}: column 'timestamp' missing")
    col = df["timestamp"]
    numeric = pd.to_numeric(col, errors="coerce")
    if numeric.notna().all():
        _fail(path, df, (numeric < 0).to_numpy(), "timestamp", "expected epoch seconds >= 0")
        return numeric.astype(np.int64)
    parsed = pd.to_datetime(col, errors="coerce", utc=True)
    _fail(path, df, parsed.isna().to_numpy(), "timestamp", "expected epoch seconds or a date-time")
    return (parsed.astype("int64") // 10**9).astype(np.int64)


def _optional_float(path: Path, df: pd.DataFrame, col: str, low: float, high: float) -> pd.Series:
    if col not in df:
        return pd.Series(np.nan, index=df.index, dtype=np.float64)
    values = pd.to_numeric(df[col], errors="coerce")
    given = df[col].notna().to_numpy()
    bad = given & ~(values.between(low, high)).to_numpy()
    _fail(path, df, bad, col, f"expected a number in [{low:g}, {high:g}]")
    return values.astype(np.float64)


def _interactions(path: Path) -> pd.DataFrame:
    df = _read(path).reset_index(drop=True)
    out = pd.DataFrame({"user_id": _ids(path, df, "user_id"), "item_id": _ids(path, df, "item_id")})
    out["rating"] = _optional_float(path, df, "rating", 1, 5)
    out["timestamp"] = _timestamps(path, df)
    if "event_type" in df:
        kind = df["event_type"].astype("string")
        _fail(path, df, (kind.notna() & ~kind.isin(EVENT_TYPES)).to_numpy(), "event_type",
              f"expected one of {', '.join(EVENT_TYPES)}")
    else:
        kind = pd.Series(pd.NA, index=df.index, dtype="string")
    default = np.where(out["rating"].notna(), "rating", "click")
    out["event_type"] = kind.fillna(pd.Series(default, index=df.index)).astype(str)
    _fail(path, df.assign(rating=out["rating"]), ((out["event_type"] == "rating") & out["rating"].isna()).to_numpy(),
          "rating", "required with event_type rating")
    out["progress"] = _optional_float(path, df, "progress", 0, 1)
    if "position" in df:
        pos = pd.to_numeric(df["position"], errors="coerce")
        _fail(path, df, (df["position"].notna() & ~(pos >= 0)).to_numpy(), "position", "expected a rank >= 0")
        out["position"] = pos.round().astype("Int64")
    else:
        out["position"] = pd.array([pd.NA] * len(df), dtype="Int64")
    return out


def _items(path: Path) -> pd.DataFrame:
    df = _read(path).reset_index(drop=True)
    out = pd.DataFrame({"item_id": _ids(path, df, "item_id")})
    dup = out["item_id"].duplicated().to_numpy()
    _fail(path, out, dup, "item_id", "duplicate item id")
    out["title"] = df["title"].astype(str) if "title" in df else "item " + out["item_id"].astype(str)
    out["genres"] = df["genres"].fillna("").astype(str) if "genres" in df else ""
    year = pd.to_numeric(df["year"], errors="coerce") if "year" in df else pd.Series(0, index=df.index)
    out["year"] = year.fillna(0).astype(np.int64)
    return out


def _users(path: Path | None, user_ids: np.ndarray) -> pd.DataFrame:
    if path is None:
        df = pd.DataFrame({"user_id": np.unique(user_ids)})
    else:
        raw = _read(path).reset_index(drop=True)
        df = pd.DataFrame({"user_id": _ids(path, raw, "user_id")})
        for col in ("gender", "age", "occupation"):
            if col in raw:
                df[col] = raw[col]
    df["gender"] = df["gender"].fillna("U").astype(str) if "gender" in df else "U"
    for col in ("age", "occupation"):
        values = pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(0, index=df.index)
        df[col] = values.fillna(0).astype(np.int64)
    df["zip"] = ""
    return df[["user_id", "gender", "age", "occupation", "zip"]]


def load_interaction_log(data_dir: str | Path) -> InteractionData:
    """A team's own log: ``interactions`` + ``items`` (+ optional ``users``), parquet or CSV."""
    data_dir = Path(data_dir)
    inter_path = _find(data_dir, "interactions", required=True)
    items_path = _find(data_dir, "items", required=True)
    assert inter_path is not None and items_path is not None
    inter = _interactions(inter_path)
    items = _items(items_path)
    unknown = ~inter["item_id"].isin(items["item_id"]).to_numpy()
    _fail(inter_path, inter, unknown, "item_id", f"item id absent from {items_path.name}")
    if inter.empty:
        raise DataFormatError(f"{inter_path}: no interactions")
    users = _users(_find(data_dir, "users", required=False), inter["user_id"].to_numpy())
    return InteractionData(interactions=inter, items=items, users=users)


def load_data(data_dir: str | Path) -> InteractionData:
    """GroupLens files or a team's own interaction log, whichever ``data_dir`` holds."""
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DataFormatError(f"{data_dir}: data directory does not exist (set DATA_DIR)")
    if (data_dir / "ratings.dat").is_file():
        return load_movielens(data_dir)
    return load_interaction_log(data_dir)


def merge_events(data: InteractionData, events: pd.DataFrame, until: int) -> InteractionData:
    """``data`` with the archived ``events`` (one per event_id, timestamp < ``until``) added as
    interactions. Impressions (what was shown, not what the user did) and events for items the
    catalog lacks are left out; new users are added to the user table with unknown demographics."""
    ev = events[(events["timestamp"] < until) & ~events["event_type"].isin(NOT_INTERACTIONS)] if len(events) else events
    if len(ev):
        ev = ev.drop_duplicates("event_id", keep="first")
        known = ev["item_id"].isin(data.items["item_id"])
        if (~known).any():
            log.warning("%d archived events name items the item table lacks; left out", int((~known).sum()))
        ev = ev[known]
    if not len(ev):
        return data
    rows = pd.DataFrame({
        "user_id": ev["user_id"].astype(np.int64).to_numpy(),
        "item_id": ev["item_id"].astype(np.int64).to_numpy(),
        "rating": pd.to_numeric(ev["value"], errors="coerce").astype(np.float64).to_numpy(),
        "timestamp": ev["timestamp"].astype(np.int64).to_numpy(),
        "event_type": ev["event_type"].astype(str).to_numpy(),
        "progress": pd.to_numeric(ev["progress"], errors="coerce").astype(np.float64).to_numpy(),
        "position": pd.array(ev["position"], dtype="Int64"),
    })
    base = data.interactions.copy()
    if "event_type" not in base:
        base["event_type"] = np.where(base["rating"].notna(), "rating", "click")
    for col, dtype in (("progress", np.float64), ("position", "Int64")):
        if col not in base:
            base[col] = pd.Series(pd.NA if dtype == "Int64" else np.nan, index=base.index, dtype=dtype)
    base["rating"] = base["rating"].astype(np.float64)
    merged = pd.concat([base[list(INTERACTION_COLUMNS)], rows], ignore_index=True)
    new_users = np.setdiff1d(rows["user_id"].unique(), data.users["user_id"].to_numpy())
    users = data.users
    if new_users.size:
        users = pd.concat([users, pd.DataFrame({"user_id": new_users, "gender": "U", "age": 0, "occupation": 0,
                                                "zip": ""})], ignore_index=True)
    return InteractionData(interactions=merged, items=data.items, users=users)
