"""``make events-export OUT=file.parquet``: every logged event, in one parquet file.

The archive (what the consumer wrote) plus whatever is still in the event log and not archived
yet, one row per event_id, ordered by timestamp; columns of the event contract
(:data:`recsys.online.events.EVENT_COLUMNS`). Reads the same ``REDIS_URL`` / ``RUNS_DIR`` /
``EVENT_ARCHIVE_DIR`` settings as the servers and the consumer.

    python -m recsys.online.export --out events.parquet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from recsys.online.archive import events_frame, raw_rows, read_archive, sort_events
from recsys.online.events import EVENT_COLUMNS


def export_events(out: str | Path) -> dict[str, int]:
    """Write the export; counts of what went in (``duplicates``: raw archive rows beyond one per event)."""
    from recsys.config import get_settings
    from recsys.online.event_log import open_log

    s = get_settings()
    archived = read_archive(s.archive_dir())
    in_log = events_frame(list(open_log(s.redis_url, s.runs_dir, stream=s.event_stream).entries()))
    both = pd.concat([archived, in_log], ignore_index=True).drop_duplicates("event_id", keep="first")
    both = sort_events(both)[list(EVENT_COLUMNS)]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    both.to_parquet(out, index=False)
    raw = raw_rows(s.archive_dir())
    return {"events": len(both), "archived": len(archived), "in_log": len(in_log),
            "only_in_log": len(both) - len(archived), "archive_rows": raw, "duplicates": raw - len(archived)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="parquet file to write")
    args = p.parse_args(argv)
    try:
        counts = export_events(args.out)
    except Exception as exc:  # noqa: BLE001 - the log's Redis unreachable, a bad setting: one line
        from recsys.config import describe_settings_error

        print(f"error: events-export: {describe_settings_error(exc)}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
