"""Evaluate: the two-stage model vs the baselines on the test split (full-catalog ranking)."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(ingested: Input[Dataset], features: Input[Dataset], towers: Input[Model], index: Input[Model],
             ranker: Input[Model], baselines: bool, report: Output[Artifact], metrics: Output[Metrics],
             history_len: Optional[int] = None, embedding_dim: Optional[int] = None,
             top_k_candidates: Optional[int] = None, ranker_rounds: Optional[int] = None):
    """``report``: report.json (every model's metrics, the funnel, seconds); ``metrics``: the headline numbers."""
    import time

    t0 = time.perf_counter()
    from components import setup_logging

    setup_logging()
    from recsys.artifacts.registry import metric_name
    from recsys.constants import PRIMARY_MODEL
    from recsys.training import steps

    s = steps.settings_with(history_len=history_len, embedding_dim=embedding_dim, top_k_candidates=top_k_candidates,
                            lgbm_n_estimators=ranker_rounds)
    result = steps.evaluate(ingested.path, features.path, towers.path, index.path, ranker.path, report.path, s,
                            baselines=baselines)
    for model, ms in result["models"].items():
        for k in ("ndcg@10", "recall@10", "hr@10", "mrr", "coverage@10"):
            if k in ms:
                metrics.log_metric(metric_name(f"{model}.{k}"), float(ms[k]))
    report.metadata["protocol"] = result["protocol"]
    report.metadata["ndcg_at_10"] = float(result["models"][PRIMARY_MODEL]["ndcg@10"])
    report.metadata["recall_at_10"] = float(result["models"][PRIMARY_MODEL]["recall@10"])
    report.metadata["seconds"] = time.perf_counter() - t0
