"""Two-tower: level-2 towers with early stopping, level-0 towers refit for the best epoch count."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_two_tower(ingested: Input[Dataset], features: Input[Dataset], towers: Output[Model],
                    history_len: Optional[int] = None, embedding_dim: Optional[int] = None,
                    top_k_candidates: Optional[int] = None, ranker_rounds: Optional[int] = None):
    """level2/ and level0/ two-tower directories (state_dict, shape, item embeddings) + history.json."""
    import time

    t0 = time.perf_counter()
    from components import setup_logging

    setup_logging()
    import torch

    from recsys.training import steps

    s = steps.settings_with(history_len=history_len, embedding_dim=embedding_dim, top_k_candidates=top_k_candidates,
                            lgbm_n_estimators=ranker_rounds)
    hist = steps.train_two_tower(ingested.path, features.path, towers.path, s)
    towers.metadata["framework"] = "pytorch"
    towers.metadata["framework_version"] = torch.__version__
    towers.metadata["embedding_dim"] = s.embedding_dim
    towers.metadata["best_epoch"] = hist["best_epoch"]
    towers.metadata["best_val_recall_at_100"] = hist["best_val_recall"]
    towers.metadata["seconds"] = time.perf_counter() - t0
