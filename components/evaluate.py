"""Evaluate: the two-stage model vs the baselines on the test split; writes the model bundle."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(ingested: Input[Dataset], features: Input[Dataset], towers: Input[Model], index: Input[Model],
             ranker: Input[Model], embedding_dim: int, top_k_candidates: int, baselines: bool,
             bundle: Output[Model], metrics: Output[Metrics]):
    """``bundle``: the bundle directory (recsys/bundle.py) with report.json; ``metrics``: its numbers."""
    import time

    t0 = time.perf_counter()
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from recsys import steps
    from recsys.registry import metric_name

    s = steps.settings_with(embedding_dim=embedding_dim, top_k_candidates=top_k_candidates)
    path, report = steps.evaluate(ingested.path, features.path, towers.path, index.path, ranker.path, bundle.path, s, baselines=baselines)
    for model, ms in report["models"].items():
        for k in ("ndcg@10", "recall@10", "hr@10", "mrr", "coverage@10"):
            if k in ms:
                metrics.log_metric(metric_name(f"{model}.{k}"), float(ms[k]))
    final = report["models"]["two_tower+ranker"]
    bundle.metadata["format"] = "recsys-bundle"
    bundle.metadata["version"] = report["version"]
    bundle.metadata["protocol"] = report["protocol"]
    bundle.metadata["ndcg_at_10"] = float(final["ndcg@10"])
    bundle.metadata["recall_at_10"] = float(final["recall@10"])
    bundle.metadata["seconds"] = time.perf_counter() - t0
