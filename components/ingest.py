"""Ingest: GroupLens files or a team's own interaction log from DATA_DIR / ``data_dir`` (or a
verified download), plus the archived feedback events up to a cut-off, split by protocol."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest(data_dir: str, protocol: str, ingested: Output[Dataset], events_dir: str = "",
           events_until: Optional[int] = None):
    """interactions/items/users/train/test parquet + meta.json in ``ingested``; ``events_dir``: the
    event archive ("" = none), ``events_until``: its cut-off, epoch seconds (None = now)."""
    import time

    t0 = time.perf_counter()
    from components import setup_logging

    setup_logging()
    from recsys.training import steps

    meta = steps.ingest(data_dir or None, ingested.path, protocol, events_dir or None, events_until)
    for key in ("protocol", "data_fingerprint", "n_interactions", "n_events", "n_users", "n_items", "n_train",
                "n_test", "source"):
        ingested.metadata[key] = meta[key]
    ingested.metadata["format"] = "parquet"
    ingested.metadata["seconds"] = time.perf_counter() - t0
