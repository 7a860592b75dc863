"""Index: FAISS over the item embeddings (nprobe tuned to the recall target) + co-occurrence channel."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def build_index(ingested: Input[Dataset], features: Input[Dataset], towers: Input[Model], index: Output[Model],
                history_len: Optional[int] = None, embedding_dim: Optional[int] = None,
                top_k_candidates: Optional[int] = None, ranker_rounds: Optional[int] = None):
    """level2/ and level0/ (index.faiss, index.json, cooc.npz) + stats.json."""
    import time

    t0 = time.perf_counter()
    from components import setup_logging

    setup_logging()
    import faiss

    from recsys.training import steps

    s = steps.settings_with(history_len=history_len, embedding_dim=embedding_dim, top_k_candidates=top_k_candidates,
                            lgbm_n_estimators=ranker_rounds)
    stats = steps.build_index(ingested.path, features.path, towers.path, index.path, s)
    index.metadata["framework"] = "faiss"
    index.metadata["framework_version"] = faiss.__version__
    index.metadata["kind"] = stats["level0"]["kind"]
    index.metadata["nprobe"] = stats["level0"]["nprobe"]
    index.metadata["recall_at_k_vs_exact"] = stats["level0"]["recall_at_k_vs_exact"]
    index.metadata["seconds"] = time.perf_counter() - t0
