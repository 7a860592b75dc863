"""The training pipeline: ingest -> features -> two-tower -> index -> ranker -> evaluate
-> register (MLflow) -> materialize (Feast) -> skew check.

Compiled to ``pipelines/training_pipeline.yaml`` by ``make pipeline-compile`` (golden-tested).
"""


from pathlib import Path

from kfp import compiler, dsl

from components.build_index import build_index
from components.evaluate import evaluate
from components.features import features
from components.ingest import ingest
from components.materialize import materialize
from components.register import register
from components.skew import skew
from components.train_ranker import train_ranker
from components.train_two_tower import train_two_tower

PIPELINE_NAME = "movielens-recommender-training"
YAML_PATH = Path(__file__).with_name("training_pipeline.yaml")
# Task names in execution order (the timing table of `make train` follows it).
STEPS = ("ingest", "features", "train-two-tower", "build-index", "train-ranker", "evaluate", "register", "materialize", "skew")


@dsl.pipeline(name=PIPELINE_NAME, description="Two-tower + FAISS + LambdaMART on MovieLens-1M; MLflow registry; Feast online store")
def training_pipeline(
    data_dir: str = "",
    protocol: str = "user-temporal",
    history_len: int = 50,
    embedding_dim: int = 64,
    top_k_candidates: int = 500,
    ranker_rounds: int = 500,
    baselines: bool = True,
    gate_min_delta: float = 0.0,
    feast_project: str = "",
    skew_threshold: float = 0.1,
    skew_sample_size: int = 1000,
):
    """Parameters:

    data_dir: GroupLens ml-1m directory inside the image / volume; "" = DATA_DIR or download.
    embedding_dim, top_k_candidates, ranker_rounds (LightGBM rounds), history_len: model settings
    (0 = the image's environment / default). baselines: evaluate popularity/EASE/iALS too.
    gate_min_delta: the new version becomes `champion` when its NDCG@10 >= champion's + delta.
    feast_project: "" = FEAST_PROJECT. skew_threshold / skew_sample_size: online skew check.
    """
    ing = ingest(data_dir=data_dir, protocol=protocol).set_display_name("ingest")
    feat = features(ingested=ing.outputs["ingested"], history_len=history_len)
    tt = train_two_tower(ingested=ing.outputs["ingested"], features=feat.outputs["features"], embedding_dim=embedding_dim)
    idx = build_index(ingested=ing.outputs["ingested"], features=feat.outputs["features"], towers=tt.outputs["towers"],
                      embedding_dim=embedding_dim, top_k_candidates=top_k_candidates)
    rk = train_ranker(ingested=ing.outputs["ingested"], features=feat.outputs["features"], towers=tt.outputs["towers"],
                      index=idx.outputs["index"], embedding_dim=embedding_dim, top_k_candidates=top_k_candidates,
                      ranker_rounds=ranker_rounds)
    ev = evaluate(ingested=ing.outputs["ingested"], features=feat.outputs["features"], towers=tt.outputs["towers"],
                  index=idx.outputs["index"], ranker=rk.outputs["ranker"], embedding_dim=embedding_dim,
                  top_k_candidates=top_k_candidates, baselines=baselines)
    reg = register(bundle=ev.outputs["bundle"], gate_min_delta=gate_min_delta)
    mat = materialize(bundle=ev.outputs["bundle"], feast_project=feast_project)
    mat.after(reg)
    skew(bundle=ev.outputs["bundle"], online=mat.outputs["online"], feast_project=feast_project,
         threshold=skew_threshold, sample_size=skew_sample_size)


def compile_pipeline(path=YAML_PATH) -> Path:
    """Write the pipeline's IR YAML to ``path``."""
    compiler.Compiler().compile(training_pipeline, package_path=str(path))
    return Path(path)
