"""One settings object for the whole project, read from environment variables.

Every field maps to an upper-case environment variable of the same name (``EMBEDDING_DIM``,
``TOP_K_CANDIDATES``...). Defaults are the documented ones; the README lists them all.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ML1M_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
ML1M_MD5 = "c4d9eecfca2ab87c1945afe126590906"


class Settings(BaseSettings):
    """Project configuration (environment variables, case-insensitive)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    # --- data -------------------------------------------------------------------------
    data_dir: Path | None = Field(None, description="Local GroupLens ml-1m directory; download when unset")
    data_url: str = Field(ML1M_URL, description="Where ml-1m.zip is downloaded from (file:// works)")
    data_md5: str = Field(ML1M_MD5, description="Expected md5 of ml-1m.zip")
    cache_dir: Path = Field(Path.home() / ".cache" / "recsys", description="Download cache")
    seed: int = Field(42, description="Seed for every random step (torch, numpy, LightGBM, FAISS)")

    # --- two-tower retriever ----------------------------------------------------------
    embedding_dim: int = Field(64, ge=8, le=1024)
    history_len: int = Field(50, ge=1, le=500, description="Recent items the user tower attends over")
    tt_epochs: int = Field(20, ge=1, description="Max epochs (early stopping on validation recall)")
    tt_patience: int = Field(2, ge=1)
    tt_batch_size: int = Field(1024, ge=16)
    tt_learning_rate: float = Field(2e-3, gt=0)
    tt_temperature: float = Field(0.05, gt=0)
    tt_weight_decay: float = Field(1e-6, ge=0)
    tt_dropout: float = Field(0.1, ge=0, lt=1)
    torch_threads: int = Field(0, ge=0, description="0 = torch default")

    # --- candidate generation ---------------------------------------------------------
    top_k_candidates: int = Field(500, ge=10, le=5000, description="Two-tower candidates from FAISS")
    faiss_n_lists: int = Field(100, ge=1)
    faiss_n_probe: int = Field(10, ge=1, description="Starting nprobe; raised until recall target is met")
    faiss_target_recall: float = Field(0.95, gt=0, le=1, description="ANN recall@TOP_K vs exact to reach")
    faiss_exact_below: int = Field(0, ge=0, description="Use an exact flat index below this many items")
    cooc_candidates: int = Field(200, ge=0, description="Candidates from the next-item co-occurrence channel")
    cooc_window: int = Field(5, ge=1, description="Later items counted as 'next' after an item")
    cooc_last_items: int = Field(5, ge=1, description="User's last items the channel starts from")
    popular_candidates: int = Field(0, ge=0, description="Candidates from the popularity channel")

    # --- ranker -----------------------------------------------------------------------
    lgbm_n_estimators: int = Field(500, ge=1)
    lgbm_learning_rate: float = Field(0.05, gt=0)
    lgbm_num_leaves: int = Field(15, ge=2, description="Chosen on level-1 validation NDCG@10 (loo), not on test")
    lgbm_min_data_in_leaf: int = Field(100, ge=1)
    lgbm_early_stopping_rounds: int = Field(30, ge=1)
    lgbm_num_threads: int = Field(0, ge=0, description="0 = LightGBM default")
    rank_candidates: int = Field(300, ge=10, description="Merged candidates the ranker scores per user")

    # --- evaluation -------------------------------------------------------------------
    ease_lambda: float = Field(500.0, gt=0)
    ials_factors: int = Field(64, ge=1)
    ials_iterations: int = Field(15, ge=1)
    ials_regularization: float = Field(0.05, ge=0)
    ials_alpha: float = Field(2.0, gt=0)

    # --- SASRec baseline (recsys.models.sasrec; seed = SEED, threads = TORCH_THREADS) -----
    sasrec_layers: int = Field(3, ge=1, description="Causal Transformer blocks")
    sasrec_dim: int = Field(128, ge=8, le=1024, description="Hidden size (item and position embeddings)")
    sasrec_heads: int = Field(1, ge=1, description="Attention heads (must divide SASREC_DIM)")
    sasrec_dropout: float = Field(0.2, ge=0, lt=1)
    # Chosen on level-2 validation only (scripts/tune_sasrec.py -> reports/sasrec-tuning*.json; the
    # choice and its reasons: README, "Offline quality"). The epoch cap is there to let early stopping
    # end the fit, never to stop a still-improving model (scripts/sasrec_budget.py checks it).
    sasrec_max_len: int = Field(50, ge=2, le=1000, description="Latest items of a history the model reads")
    sasrec_learning_rate: float = Field(3e-3, gt=0)
    sasrec_batch_size: int = Field(64, ge=1, description="Users (sequences) per batch")
    sasrec_max_epochs: int = Field(30, ge=1, description="Max epochs (early stopping on validation NDCG@10)")
    sasrec_patience: int = Field(3, ge=1, description="Epochs without a better validation NDCG@10 before stopping")

    # --- local state, registry, feature store -------------------------------------------
    runs_dir: Path = Field(Path("runs"), description="Local state: MLflow store, kfp.local root, Feast data")
    mlflow_tracking_uri: str | None = Field(None, description="Default sqlite:///<RUNS_DIR>/mlflow.db")
    mlflow_artifact_root: str | None = Field(
        None, description="Artifact root of the training experiment (s3://..., file:///...), what storageUri is "
                          "built from; default: mlartifacts/ beside a local SQLite/file store, the server's own "
                          "root for an http(s) tracking server")
    registered_model_name: str = Field("recommender", description="MLflow registered model")
    gate_margin: float = Field(-0.002, le=0.1, description="Registry gate: promote when the lower bound of the 95% "
                               "paired-bootstrap interval of NDCG@10 (challenger - champion) is above this")
    gate_resamples: int = Field(1000, ge=100, description="Bootstrap resamples of the gate's interval (users)")
    feast_repo_path: Path = Field(Path("feature_repo"), description="Feast feature repo (features as code)")
    feast_project: str = Field("recommender", description="Feast project (tests use their own)")
    redis_url: str | None = Field(
        None, description="redis://[:password@]host:port/db; unset = embedded SQLite online store, no cache"
    )
    feature_store_timeout_seconds: float = Field(
        0.1, gt=0, description="Deadline of an online-store call on the request path (and the socket timeouts of "
                               "Feast's Redis clients): a hung store costs a request at most this")

    # --- serving ------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Python log level of the servers, the consumer and the pipeline steps")
    cache_ttl_seconds: int = Field(300, ge=0)
    cache_timeout_seconds: float = Field(0.05, gt=0, description="Deadline of a result-cache call (Redis)")
    predictor_timeout_seconds: float = Field(0.5, gt=0, description="Deadline of the transformer -> predictor call")
    circuit_failure_threshold: int = Field(2, ge=1, description="Consecutive failures that open a dependency's circuit")
    circuit_open_seconds: float = Field(1.0, gt=0, description="Seconds an open circuit waits before one probe call")
    heal_interval_seconds: float = Field(
        30.0, ge=0, description="Online store found missing rows of the model version's users: refill them in the "
                                "background at most this often (0 = never)")
    max_request_bytes: int = Field(1 << 20, ge=1024, description="Largest request body (REST 413, gRPC message size)")
    max_batch_users: int = Field(256, ge=1, description="Most user ids in one recommend request")
    max_history_items: int = Field(500, ge=1, description="Most items in a request's session history")
    event_max_past_seconds: int = Field(7 * 86_400, ge=0, description="Oldest event timestamp accepted, before now")
    event_max_future_seconds: int = Field(300, ge=0, description="Latest event timestamp accepted, after now")

    # --- event loop -----------------------------------------------------------------------
    event_stream: str = Field("recsys:events", description="Redis Stream of the event log (with REDIS_URL)")
    ab_experiment: str = Field("", description="Per-user A/B experiment between model versions (JSON, or @file; "
                               "recsys/online/experiment.py); empty = no experiment")
    event_log_timeout_seconds: float = Field(0.1, gt=0, description="Deadline of writing an event to the log")
    spool_dir: Path | None = Field(None, description="Where events wait while the log is unreachable; "
                                                     "default RUNS_DIR/spool")
    spool_max_bytes: int = Field(64 << 20, ge=1024, description="Spool size at which events are refused (503)")
    event_archive_dir: Path | None = Field(None, description="The consumer's parquet archive of every event; "
                                                             "default RUNS_DIR/events/archive")
    cache_prefix: str = Field("recsys:rec", description="Redis key prefix of the result cache")
    mmr_lambda: float = Field(1.0, ge=0, le=1, description="1.0 = no diversity re-ranking")
    ranker_backend: Literal["compiled", "lightgbm"] = Field(
        "compiled",
        description="Servers: compiled trees (treelite/tl2cgen, needs a C compiler; checked against LightGBM at load, "
        "falls back to it) or LightGBM's own predict",
    )
    user_vector_memo: int = Field(
        100_000,
        ge=0,
        description="Servers: user vectors remembered by the user tower's exact inputs "
        "(filled with the model version's users at load); 0 = off",
    )
    ranker_compile_dir: Path | None = Field(
        None, description="Where compiled rankers are cached; default CACHE_DIR/compiled"
    )
    skew_threshold: float = Field(0.1, gt=0, description="KL above which a feature is flagged as skewed")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, v: object) -> object:
        return v.strip().upper() if isinstance(v, str) else v

    def spool_path(self) -> Path:
        return (self.spool_dir or self.runs_dir / "spool") / "events.jsonl"

    def archive_dir(self) -> Path:
        return self.event_archive_dir or self.runs_dir / "events" / "archive"

    def compile_dir(self) -> Path:
        return self.ranker_compile_dir or self.cache_dir / "compiled"

    def tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI, or a SQLite store under RUNS_DIR."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.runs_dir.resolve()}/mlflow.db"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()


def describe_settings_error(exc: Exception) -> str:
    """One line naming the environment variable a pydantic ValidationError of :class:`Settings` is about."""
    errors = getattr(exc, "errors", None)
    if not callable(errors) or not errors():
        return str(exc)
    first = errors()[0]
    name = ".".join(str(x) for x in first.get("loc", ())).upper()
    return f"environment variable {name}: {first.get('msg')} (got {first.get('input')!r})"
