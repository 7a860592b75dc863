"""Skew: KL divergence per user feature, training histograms (bundle) vs a sample from the online store."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Input, Metrics, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def skew(bundle: Input[Model], online: Input[Artifact], sample_size: int, kl: Output[Metrics],
         feast_project: Optional[str] = None, threshold: Optional[float] = None) -> bool:
    """Log KL per feature; metadata ``flagged`` (list) and ``skewed``; return whether any feature is flagged.
    ``feast_project`` / ``threshold``: None = FEAST_PROJECT / SKEW_THRESHOLD of the image's environment."""
    import time

    t0 = time.perf_counter()
    from components import setup_logging

    setup_logging()
    from recsys.config import get_settings
    from recsys.online.feature_store import get_store
    from recsys.online.skew import online_skew

    threshold = threshold if threshold is not None else get_settings().skew_threshold
    result = online_skew(bundle.path, get_store(project=feast_project), threshold, sample_size)
    for name, value in result["kl"].items():
        kl.log_metric(f"kl_{name}", float(value))
    kl.metadata["flagged"] = result["flagged"]
    kl.metadata["skewed"] = result["skewed"]
    kl.metadata["threshold"] = threshold
    kl.metadata["sample"] = result["n"]
    kl.metadata["missing"] = result["missing"]
    kl.metadata["seconds"] = time.perf_counter() - t0
    return bool(result["skewed"])
