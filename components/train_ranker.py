"""Ranker: LightGBM LambdaMART on level-2 candidates, early-stopped on level-1 candidates."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_ranker(ingested: Input[Dataset], features: Input[Dataset], towers: Input[Model], index: Input[Model],
                 ranker: Output[Model], history_len: Optional[int] = None, embedding_dim: Optional[int] = None,
                 top_k_candidates: Optional[int] = None, ranker_rounds: Optional[int] = None):
    """ranker.txt (LightGBM text model), ranker.json, ranker_features.npy, funnel.json."""
    import time

    t0 = time.perf_counter()
    from components import setup_logging

    setup_logging()
    import lightgbm

    from recsys.training import steps

    s = steps.settings_with(history_len=history_len, embedding_dim=embedding_dim, top_k_candidates=top_k_candidates,
                            lgbm_n_estimators=ranker_rounds)
    info = steps.train_ranker(ingested.path, features.path, towers.path, index.path, ranker.path, s)
    ranker.metadata["framework"] = "lightgbm"
    ranker.metadata["framework_version"] = lightgbm.__version__
    for key in ("best_iteration", "valid_ndcg@10", "train_rows", "train_groups", "ranker_train_candidate_recall"):
        ranker.metadata[key] = info[key]
    ranker.metadata["seconds"] = time.perf_counter() - t0
