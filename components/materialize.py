"""Materialize: apply the Feast definitions, write the offline parquet, push the bundle's features online."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def materialize(bundle: Input[Model], online: Output[Artifact], feast_project: Optional[str] = None):
    """``online``: JSON summary (project, online store type, rows, offline files); ``feast_project``
    None = FEAST_PROJECT."""
    import json
    import time

    t0 = time.perf_counter()
    from components import setup_logging

    setup_logging()
    from pathlib import Path

    from recsys.online.feature_store import get_store, materialize_bundle

    store = get_store(project=feast_project)
    info = materialize_bundle(store, bundle.path)
    Path(online.path).write_text(json.dumps(info, indent=2))
    for key in ("project", "online_store", "users", "items"):
        online.metadata[key] = info[key]
    online.metadata["registry"] = str(store.config.registry.path)
    online.metadata["seconds"] = time.perf_counter() - t0
