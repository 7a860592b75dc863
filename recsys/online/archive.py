"""The event archive: every logged event as date-partitioned parquet, the offline store's event
source and what retraining reads.

``<archive>/date=YYYY-MM-DD/part-<ms>-<id>.parquet`` (UTC date of the event's timestamp), one
file per consumer batch and day, columns :data:`recsys.online.events.EVENT_COLUMNS`. Delivery is
at least once: the consumer does not archive its own redeliveries again, but a consumer killed
between writing a batch and acknowledging it leaves the batch to be written a second time, so
every reader goes through :func:`read_archive`, which keeps one row per ``event_id``.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import pandas as pd

from recsys.online.events import EVENT_COLUMNS, Event

DTYPES = {"user_id": "int64", "item_id": "int64", "timestamp": "int64", "value": "float64", "progress": "float64",
          "position": "Int64"}


def events_frame(events: list[Event]) -> pd.DataFrame:
    """Events as a frame with the archive's columns and types."""
    df = pd.DataFrame([e.row() for e in events], columns=list(EVENT_COLUMNS))
    df = df.astype({k: v for k, v in DTYPES.items() if k in df})
    df["event_timestamp"] = pd.to_datetime(df["timestamp"], unit="s", utc=True)  # the Feast source's time column
    return df


def sort_events(df: pd.DataFrame) -> pd.DataFrame:
    """Events in the archive's order: by timestamp, ties by event_id (a stable sort), index reset."""
    return df.sort_values(["timestamp", "event_id"], kind="mergesort").reset_index(drop=True)


def write_batch(events: list[Event], archive_dir: str | Path) -> list[Path]:
    """Append ``events`` to the archive (one file per UTC day in the batch); the files written.
    Each file is written to a temporary name, fsynced and renamed: a reader never sees half a file."""
    if not events:
        return []
    df = events_frame(events)
    days = pd.to_datetime(df["timestamp"], unit="s", utc=True).dt.strftime("%Y-%m-%d")
    out = []
    stamp = f"{int(dt.datetime.now(dt.UTC).timestamp() * 1000)}-{uuid.uuid4().hex[:8]}"
    for day, part in df.groupby(days):
        d = Path(archive_dir) / f"date={day}"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"part-{stamp}.parquet"
        tmp = d / f".{path.name}.tmp"
        part.to_parquet(tmp, index=False)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        out.append(path)
    return out


def read_archive(archive_dir: str | Path, until: int | None = None, since: int | None = None) -> pd.DataFrame:
    """Every archived event (one row per event_id, the first written), ordered by timestamp;
    ``since`` / ``until``: epoch-second bounds (inclusive since, exclusive until)."""
    files = sorted(Path(archive_dir).glob("date=*/part-*.parquet"))
    if not files:
        return events_frame([])
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    df = df.drop_duplicates("event_id", keep="first")
    if since is not None:
        df = df[df["timestamp"] >= since]
    if until is not None:
        df = df[df["timestamp"] < until]
    return sort_events(df)


def raw_rows(archive_dir: str | Path) -> int:
    """Rows in the archive's files, duplicates included (what at-least-once delivery wrote)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in Path(archive_dir).glob("date=*/part-*.parquet"))
