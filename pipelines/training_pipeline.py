"""The training pipeline: ingest -> features -> two-tower -> index -> ranker -> evaluate
-> package (the bundle) -> register (MLflow) -> materialize (Feast) -> skew check.

Compiled to ``pipelines/training_pipeline.yaml`` by ``make pipeline-compile`` (golden-tested).
"""

import inspect
from pathlib import Path
from typing import Optional

from kfp import compiler, dsl

from components.build_index import build_index
from components.evaluate import evaluate
from components.features import features
from components.ingest import ingest
from components.materialize import materialize
from components.package import package
from components.register import register
from components.skew import skew
from components.train_ranker import train_ranker
from components.train_two_tower import train_two_tower
from recsys.online.skew import online_skew

PIPELINE_NAME = "movielens-recommender-training"
YAML_PATH = Path(__file__).with_name("training_pipeline.yaml")
# Task names in execution order (the timing table of `make train` follows it).
STEPS = ("ingest", "features", "train-two-tower", "build-index", "train-ranker", "evaluate", "package", "register",
         "materialize", "skew")
# One default for the skew check's sample: online_skew's own.
SKEW_SAMPLE_SIZE: int = inspect.signature(online_skew).parameters["sample_size"].default


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Two-tower + FAISS + LambdaMART on MovieLens-1M; MLflow registry; Feast online store",
)
def training_pipeline(
    data_dir: str = "",
    protocol: str = "user-temporal",
    events_dir: str = "",
    events_until: Optional[int] = None,
    history_len: Optional[int] = None,
    embedding_dim: Optional[int] = None,
    top_k_candidates: Optional[int] = None,
    ranker_rounds: Optional[int] = None,
    baselines: bool = True,
    gate_margin: Optional[float] = None,
    feast_project: Optional[str] = None,
    skew_threshold: Optional[float] = None,
    skew_sample_size: int = SKEW_SAMPLE_SIZE,
):
    """Parameters:

    data_dir: GroupLens ml-1m directory or a team's interaction log (interactions + items
    parquet/CSV) inside the image / volume; "" = DATA_DIR or download.
    events_dir: the event archive to train on as well ("" = none); events_until: its cut-off,
    epoch seconds (unset = the run's start).
    history_len, embedding_dim, top_k_candidates, ranker_rounds (LightGBM rounds): model
    settings; unset = the image's environment (HISTORY_LEN, EMBEDDING_DIM, TOP_K_CANDIDATES,
    LGBM_N_ESTIMATORS) or their defaults. Every training step gets the same values.
    baselines: evaluate popularity/EASE/iALS too.
    gate_margin: the new version becomes `champion` when the lower bound of the 95% paired-bootstrap
        interval of its NDCG@10 minus the champion's (same test users) is above this margin
        (unset = GATE_MARGIN).
    feast_project: unset = FEAST_PROJECT. skew_threshold (unset = SKEW_THRESHOLD) /
    skew_sample_size: online skew check.
    """
    model = dict(history_len=history_len, embedding_dim=embedding_dim, top_k_candidates=top_k_candidates,
                 ranker_rounds=ranker_rounds)
    ing = ingest(data_dir=data_dir, protocol=protocol, events_dir=events_dir,
                 events_until=events_until).set_display_name("ingest")
    data = dict(ingested=ing.outputs["ingested"])
    feat = features(**data, **model)
    data["features"] = feat.outputs["features"]
    tt = train_two_tower(**data, **model)
    idx = build_index(**data, towers=tt.outputs["towers"], **model)
    rk = train_ranker(**data, towers=tt.outputs["towers"], index=idx.outputs["index"], **model)
    trained = dict(**data, towers=tt.outputs["towers"], index=idx.outputs["index"], ranker=rk.outputs["ranker"])
    ev = evaluate(**trained, **model, baselines=baselines)
    pkg = package(**trained, report=ev.outputs["report"], **model)
    reg = register(bundle=pkg.outputs["bundle"], gate_margin=gate_margin)
    mat = materialize(bundle=pkg.outputs["bundle"], feast_project=feast_project)
    mat.after(reg)
    skew(bundle=pkg.outputs["bundle"], online=mat.outputs["online"], feast_project=feast_project,
         threshold=skew_threshold, sample_size=skew_sample_size)


def compile_pipeline(path=YAML_PATH) -> Path:
    """Write the pipeline's IR YAML to ``path``."""
    compiler.Compiler().compile(training_pipeline, package_path=str(path))
    return Path(path)
