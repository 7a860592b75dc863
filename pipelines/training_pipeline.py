"""The training pipeline: ingest -> features -> two-tower -> index -> ranker -> evaluate
-> package (the bundle) -> register (MLflow) -> materialize (Feast) -> skew check.

Compiled to ``pipelines/training_pipeline.yaml`` by ``make pipeline-compile`` (golden-tested).
"""

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from kfp import compiler, dsl, kubernetes

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

# Keys of the MLflow Secret, each set as the environment variable of the same name on the tasks that
# talk to MLflow or its object storage (MLFLOW_TASKS); the optional ones may be absent from the Secret.
MLFLOW_SECRET_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
MLFLOW_SECRET_OPTIONAL_KEYS = ("MLFLOW_ARTIFACT_ROOT",)
# register: the MLflow run, the bundle upload, the champion's bundle for the gate.
MLFLOW_TASKS = ("register",)
# ingest: reads data_dir and events_dir, which on a cluster live on the data volume.
DATA_TASKS = ("ingest",)


@dataclass(frozen=True)
class ClusterOptions:
    """What the pipeline's pods are connected to on a cluster, compiled into the IR's Kubernetes
    platform spec (kfp-kubernetes; kfp.local ignores it). "" = not attached.

    mlflow_secret: Secret whose MLFLOW_SECRET_KEYS (+ optional MLFLOW_ARTIFACT_ROOT) become the
    environment of MLFLOW_TASKS; data_pvc: PersistentVolumeClaim mounted at data_mount_path on
    DATA_TASKS (the MovieLens files and the stream consumer's event archive). Defaults: the
    objects of manifests/base (Secret created by the overlays or out of band)."""

    mlflow_secret: str = "mlflow-store"
    data_pvc: str = "recommender-data"
    data_mount_path: str = "/data"

    def __post_init__(self) -> None:
        if self.data_pvc and not self.data_mount_path.startswith("/"):
            raise ValueError(f"data_mount_path {self.data_mount_path!r}: an absolute path is needed")

    def events_dir(self) -> str:
        """Where the chart's stream consumer archives events on the data volume."""
        return f"{self.data_mount_path.rstrip('/')}/events/archive"


DEFAULT_CLUSTER = ClusterOptions()


def connect(task: dsl.PipelineTask, cluster: ClusterOptions) -> dsl.PipelineTask:
    """The Secret env / PVC mount of ``cluster`` that the task needs (by its name: MLFLOW_TASKS,
    DATA_TASKS); every task of the pipeline goes through here."""
    name = task.name
    if cluster.mlflow_secret and name in MLFLOW_TASKS:
        kubernetes.use_secret_as_env(task, cluster.mlflow_secret, {k: k for k in MLFLOW_SECRET_KEYS})
        kubernetes.use_secret_as_env(task, cluster.mlflow_secret, {k: k for k in MLFLOW_SECRET_OPTIONAL_KEYS},
                                     optional=True)
    if cluster.data_pvc and name in DATA_TASKS:
        kubernetes.mount_pvc(task, pvc_name=cluster.data_pvc, mount_path=cluster.data_mount_path)
    return task


def build_pipeline(cluster: ClusterOptions = DEFAULT_CLUSTER):
    """The pipeline, its tasks connected to the cluster objects of ``cluster``."""

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
        def step(task: dsl.PipelineTask) -> dsl.PipelineTask:
            return connect(task, cluster)

        model = dict(history_len=history_len, embedding_dim=embedding_dim, top_k_candidates=top_k_candidates,
                     ranker_rounds=ranker_rounds)
        ing = step(ingest(data_dir=data_dir, protocol=protocol, events_dir=events_dir,
                          events_until=events_until).set_display_name("ingest"))
        data = dict(ingested=ing.outputs["ingested"])
        feat = step(features(**data, **model))
        data["features"] = feat.outputs["features"]
        tt = step(train_two_tower(**data, **model))
        idx = step(build_index(**data, towers=tt.outputs["towers"], **model))
        rk = step(train_ranker(**data, towers=tt.outputs["towers"], index=idx.outputs["index"], **model))
        trained = dict(**data, towers=tt.outputs["towers"], index=idx.outputs["index"], ranker=rk.outputs["ranker"])
        ev = step(evaluate(**trained, **model, baselines=baselines))
        pkg = step(package(**trained, report=ev.outputs["report"], **model))
        reg = step(register(bundle=pkg.outputs["bundle"], gate_margin=gate_margin))
        mat = step(materialize(bundle=pkg.outputs["bundle"], feast_project=feast_project))
        mat.after(reg)
        step(skew(bundle=pkg.outputs["bundle"], online=mat.outputs["online"], feast_project=feast_project,
                  threshold=skew_threshold, sample_size=skew_sample_size))

    return training_pipeline


training_pipeline = build_pipeline()


def compile_pipeline(path=YAML_PATH, cluster: ClusterOptions = DEFAULT_CLUSTER) -> Path:
    """Write the pipeline's IR YAML (connected to ``cluster``) to ``path``."""
    pipeline = training_pipeline if cluster == DEFAULT_CLUSTER else build_pipeline(cluster)
    compiler.Compiler().compile(pipeline, package_path=str(path))
    return Path(path)
