"""Features: the three time-ordered levels' user/item tables and the Feast offline sources."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def features(ingested: Input[Dataset], features: Output[Dataset],
             history_len: Optional[int] = None, embedding_dim: Optional[int] = None,
             top_k_candidates: Optional[int] = None, ranker_rounds: Optional[int] = None):
    """level{2,1,0}/{history,held,items,users}.parquet and feast/{users,items}.parquet."""
    import time

    t0 = time.perf_counter()
    from components import setup_logging

    setup_logging()
    from recsys.training import steps

    s = steps.settings_with(history_len=history_len, embedding_dim=embedding_dim, top_k_candidates=top_k_candidates,
                            lgbm_n_estimators=ranker_rounds)
    meta = steps.features(ingested.path, features.path, s.history_len)
    features.metadata["protocol"] = meta["protocol"]
    features.metadata["history_len"] = meta["history_len"]
    for k, lv in meta["levels"].items():
        features.metadata[f"level{k}_users"] = lv["n_users"]
        features.metadata[f"level{k}_items"] = lv["n_items"]
    features.metadata["format"] = "parquet"
    features.metadata["seconds"] = time.perf_counter() - t0
