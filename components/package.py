"""Package: the model bundle (what MLflow registers and KServe serves) of the level-0 models."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def package(ingested: Input[Dataset], features: Input[Dataset], towers: Input[Model], index: Input[Model],
            ranker: Input[Model], report: Input[Artifact], bundle: Output[Model],
            history_len: Optional[int] = None, embedding_dim: Optional[int] = None,
            top_k_candidates: Optional[int] = None, ranker_rounds: Optional[int] = None):
    """``bundle``: the bundle directory (recsys/artifacts/bundle.py) with the evaluation's report.json."""
    import time

    t0 = time.perf_counter()
    from components import setup_logging

    setup_logging()
    from recsys.constants import PRIMARY_MODEL
    from recsys.training import steps

    s = steps.settings_with(history_len=history_len, embedding_dim=embedding_dim, top_k_candidates=top_k_candidates,
                            lgbm_n_estimators=ranker_rounds)
    _, result = steps.package(ingested.path, features.path, towers.path, index.path, ranker.path, report.path,
                              bundle.path, s)
    final = result["models"][PRIMARY_MODEL]
    bundle.metadata["format"] = "recsys-bundle"
    bundle.metadata["version"] = result["version"]
    bundle.metadata["protocol"] = result["protocol"]
    bundle.metadata["ndcg_at_10"] = float(final["ndcg@10"])
    bundle.metadata["recall_at_10"] = float(final["recall@10"])
    bundle.metadata["seconds"] = time.perf_counter() - t0
