"""Ingest: GroupLens ml-1m from DATA_DIR / ``data_dir`` (or a verified download), split by protocol."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest(data_dir: str, protocol: str, ingested: Output[Dataset]):
    """ratings/movies/users/train/test parquet + meta.json in ``ingested``."""
    import time

    t0 = time.perf_counter()
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from recsys import steps

    meta = steps.ingest(data_dir or None, ingested.path, protocol)
    for key in ("protocol", "data_fingerprint", "n_ratings", "n_users", "n_items", "n_train", "n_test", "source"):
        ingested.metadata[key] = meta[key]
    ingested.metadata["format"] = "parquet"
    ingested.metadata["seconds"] = time.perf_counter() - t0
