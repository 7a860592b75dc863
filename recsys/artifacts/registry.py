"""MLflow: log a training run, register its bundle, move the ``champion`` alias through a gate.

Layout (the contract serving relies on, see docs/pipeline.md):

* tracking store: ``MLFLOW_TRACKING_URI``, default ``sqlite:///<RUNS_DIR>/mlflow.db``;
  experiment ``<REGISTERED_MODEL_NAME>-training``, whose artifact location
  :mod:`recsys.artifacts.locations` chooses and checks (``MLFLOW_ARTIFACT_ROOT``, else
  ``mlartifacts/`` beside a local store, else the tracking server's default; never the working
  directory);
* each run logs the bundle directory under the artifact path ``bundle``:
  ``<experiment artifact location>/<run id>/artifacts/bundle/manifest.json`` ... (default store:
  ``<RUNS_DIR>/mlartifacts/<run id>/artifacts/bundle``);
* each run registers one version of ``REGISTERED_MODEL_NAME`` (default ``recommender``) whose
  ``source`` is that ``.../artifacts/bundle`` URI; version tags hold the protocol, the bundle
  version and the gate metric;
* aliases: ``champion`` (what serves) and ``challenger`` (the last version that did not pass the
  gate). ``models:/recommender@champion`` resolves to the bundle directory.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from recsys.artifacts.locations import experiment_id, local_path, local_store
from recsys.constants import GATE_METRIC

if TYPE_CHECKING:
    from mlflow import ActiveRun, MlflowClient

    from recsys.config import Settings
    from recsys.evaluation.gate import GateDecision

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
BUNDLE_ARTIFACT_PATH = "bundle"


class ModelNotFound(LookupError):
    """No registered model / version / alias of that name in the tracking store."""


@dataclass
class RegistrationResult:
    version: str
    run_id: str
    promoted: bool
    reason: str
    artifact_uri: str
    model_name: str = "recommender"
    alias: str = CHAMPION
    metric: float | None = None
    champion_metric: float | None = None
    previous_champion: str | None = None
    decided_by: str = ""
    diff: float | None = None  # mean paired NDCG@10 difference, challenger - champion
    diff_ci95: list[float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def metric_name(name: str) -> str:
    """An MLflow-safe metric / param name: ``ndcg@10`` -> ``ndcg_at_10``, ``a+b`` -> ``a_plus_b``."""
    name = name.replace("@", "_at_").replace("+", "_plus_")
    return re.sub(r"[^0-9A-Za-z_\-. /]", "_", name)


def _settings(settings: Settings | None) -> Settings:
    from recsys.config import get_settings

    return settings or get_settings()


def client(settings: Settings | None = None) -> MlflowClient:
    """An MlflowClient on the configured tracking store (also set as mlflow's current URI); the
    directory of a local SQLite store is created."""
    import mlflow

    s = _settings(settings)
    uri = s.tracking_uri()
    store = local_store(uri)
    if store is not None and uri.startswith("sqlite:"):
        store.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _flat_metrics(report: dict, manifest_metrics: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    scalars = {(None, k): v for k, v in manifest_metrics.items()}
    scalars.update({(model, k): v for model, ms in report.get("models", {}).items() for k, v in ms.items()})
    for (model, k), v in scalars.items():
        if isinstance(v, (int, float)):  # intervals (<metric>_ci95 pairs) stay in report.json
            out[metric_name(f"{model}.{k}" if model else k)] = float(v)
    for k, v in report.get("funnel", {}).items():
        out[metric_name(f"funnel.{k}")] = float(v)
    for k, v in report.get("seconds", {}).items():
        out[metric_name(f"seconds.{k}")] = float(v)
    return out


def _flat_params(settings_record: dict, extra: dict) -> dict[str, str]:
    params = {metric_name(k): str(v)[:500] for k, v in settings_record.items()}
    params.update({metric_name(k): str(v)[:500] for k, v in extra.items()})
    return params


def current_champion(c: MlflowClient, name: str):
    """The model version behind ``@champion`` or None."""
    from mlflow.exceptions import MlflowException

    try:
        return c.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def gate(challenger_dir: Path, protocol: str, champion, margin: float, settings: Settings) -> GateDecision:
    """Promote when there is no champion, or when the lower bound of the 95% interval of the paired
    NDCG@10 difference (challenger - champion, on the challenger's test users) is above ``margin``
    (:mod:`recsys.evaluation.gate`). A champion trained under another protocol is never compared."""
    from recsys.evaluation.gate import GateDecision, paired_gate

    if champion is None:
        return GateDecision(True, f"no current {CHAMPION}: first version promoted", "no_champion", margin=margin)
    champ_protocol = (champion.tags or {}).get("protocol")
    if champ_protocol != protocol:
        return GateDecision(False, f"not promoted: {CHAMPION} v{champion.version} was evaluated on protocol "
                            f"{champ_protocol!r}, this run on {protocol!r}; metrics are not comparable",
                            "protocol_mismatch", margin=margin)
    champion_dir = resolve_bundle(CHAMPION, settings=settings)
    return paired_gate(challenger_dir, champion_dir, margin, f"{CHAMPION} v{champion.version}",
                       n_resamples=settings.gate_resamples, seed=settings.seed)


def _log_run(run: ActiveRun, bundle_dir: Path, manifest: dict, report: dict, extra_params: dict | None) -> str:
    """Params, metrics, tags, the report and the bundle into the active run; the bundle's artifact URI."""
    import mlflow

    protocol, version = manifest["protocol"], manifest["version"]
    run_params = {"protocol": protocol, "bundle_version": version,
                  "data_fingerprint": manifest.get("data_fingerprint", ""), **(extra_params or {})}
    mlflow.log_params(_flat_params(manifest.get("settings", {}), run_params))
    mlflow.log_metrics(_flat_metrics(report, manifest.get("metrics", {})))
    mlflow.set_tags({"protocol": protocol, "bundle_version": version})
    mlflow.log_artifacts(str(bundle_dir), artifact_path=BUNDLE_ARTIFACT_PATH)
    if report:
        mlflow.log_dict(report, "report.json")
    return f"{run.info.artifact_uri.rstrip('/')}/{BUNDLE_ARTIFACT_PATH}"


def _ensure_registered_model(c: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        c.get_registered_model(name)
    except MlflowException:
        c.create_registered_model(name, description="Two-stage MovieLens recommender bundle (see docs/pipeline.md)")


def log_and_register(
    bundle_dir: str | Path,
    report: dict | None = None,
    settings: Settings | None = None,
    *,
    margin: float | None = None,
    run_name: str | None = None,
    extra_params: dict | None = None,
) -> RegistrationResult:
    """Log params/metrics/bundle as an MLflow run, register a model version, apply the gate.

    The new version gets ``@champion`` when it passes :func:`gate` (``margin``: the gate's margin,
    default ``GATE_MARGIN``), else ``@challenger``; the reason is logged as the run's ``gate_reason``
    tag and the version's description, the interval as ``gate_*`` tags.
    """
    import mlflow

    from recsys.artifacts.bundle import verify_bundle

    s = _settings(settings)
    bundle_dir = Path(bundle_dir)
    manifest = verify_bundle(bundle_dir)
    protocol = manifest["protocol"]
    metric = float(manifest.get("metrics", {}).get(GATE_METRIC, float("nan")))
    c = client(s)
    name = s.registered_model_name
    run_name = run_name or f"train-{manifest['version']}"
    with mlflow.start_run(experiment_id=experiment_id(c, s), run_name=run_name) as run:
        artifact_uri = _log_run(run, bundle_dir, manifest, report or {}, extra_params)
        _ensure_registered_model(c, name)
        champion = current_champion(c, name)
        decision = gate(bundle_dir, protocol, champion, s.gate_margin if margin is None else margin, s)
        promoted, reason = decision.promoted, decision.reason
        champ_metric = _champion_metric(champion)
        tags = {"protocol": protocol, "bundle_version": manifest["version"], metric_name(GATE_METRIC): str(metric)}
        mv = c.create_model_version(name, source=artifact_uri, run_id=run.info.run_id, description=reason, tags=tags)
        alias = CHAMPION if promoted else CHALLENGER
        c.set_registered_model_alias(name, alias, mv.version)
        mlflow.set_tags({"gate_reason": reason, "promoted": str(promoted).lower(), "model_version": mv.version,
                         **decision.tags()})
    log.info("registered %s v%s (%s): %s", name, mv.version, alias, reason)
    return RegistrationResult(
        version=str(mv.version), run_id=run.info.run_id, promoted=promoted, reason=reason, artifact_uri=artifact_uri,
        model_name=name, alias=alias, metric=metric, champion_metric=champ_metric,
        previous_champion=str(champion.version) if champion is not None else None,
        decided_by=decision.decided_by, diff_ci95=decision.diff.as_list() if decision.diff else None,
        diff=decision.diff.mean if decision.diff else None,
    )


def _champion_metric(champion) -> float | None:
    try:
        return float((champion.tags or {})[metric_name(GATE_METRIC)]) if champion is not None else None
    except (KeyError, ValueError):
        return None


def model_version(alias: str = CHAMPION, settings: Settings | None = None):
    """The model version behind ``models:/<REGISTERED_MODEL_NAME>@<alias>``; ModelNotFound if none."""
    from mlflow.exceptions import MlflowException

    s = _settings(settings)
    c = client(s)
    try:
        return c.get_model_version_by_alias(s.registered_model_name, alias)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):  # not an answer: say why
            raise ModelNotFound(f"models:/{s.registered_model_name}@{alias}: the registry {s.tracking_uri()} did not "
                                f"answer ({exc.error_code}: {str(exc.message)[:300]})") from exc
        raise ModelNotFound(f"models:/{s.registered_model_name}@{alias}: no such registered model or alias in "
                            f"{s.tracking_uri()} (run `make train` first)") from exc



def resolve_bundle(alias: str = CHAMPION, dst: str | Path | None = None, settings: Settings | None = None) -> Path:
    """A local bundle directory for ``models:/<name>@<alias>`` (what ``load_bundle`` takes).

    For a local artifact store without ``dst`` the stored directory itself is returned; else the
    artifacts are downloaded into ``dst`` (a temporary directory when None).
    """
    import mlflow

    from recsys.artifacts.bundle import read_manifest

    mv = model_version(alias, settings)
    local = local_path(mv.source)
    if local is not None and dst is None:
        read_manifest(local)
        return local
    target = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix=f"bundle-{alias}-"))
    target.mkdir(parents=True, exist_ok=True)
    path = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(target)))
    read_manifest(path)
    return path


MODEL_URI = re.compile(r"^models:/(?P<name>[^@/]+)@(?P<alias>[\w-]+)$")


def resolve_model_dir(model_dir: str | None, model_uri: str | None = None) -> str | None:
    """``model_dir`` if given; else the bundle directory of ``models:/<name>@<alias>``."""
    if model_dir:
        return model_dir
    if not model_uri:
        return None
    match = MODEL_URI.match(model_uri)
    if not match:
        raise ValueError(f"--model_uri: expected models:/<name>@<alias>, got {model_uri!r}")
    from recsys.config import get_settings

    settings = get_settings().model_copy(update={"registered_model_name": match["name"]})
    path = resolve_bundle(alias=match["alias"], settings=settings)
    log.info("resolved %s to %s", model_uri, path)
    return str(Path(path))
