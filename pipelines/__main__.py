"""Command line of the training pipeline (``python -m pipelines <command>``).

* ``train``   run the whole pipeline locally with ``kfp.local`` (subprocesses, no Docker),
              then print per-step times and where the bundle, MLflow and Feast went;
* ``compile`` write the IR YAML (``pipelines/training_pipeline.yaml``);
* ``run``     submit the compiled pipeline to a KFP endpoint (``--host`` / ``KFP_HOST``);
* ``schedule`` create a KFP recurring run (cron) that retrains on the event archive.

Model settings not exposed as pipeline parameters (epochs, LightGBM leaves...) come from the
environment (see recsys.config), which the local subprocesses inherit.

``compile``, ``run`` and ``schedule`` connect the tasks to the cluster (``--mlflow-secret``,
``--data-pvc``, ``--data-mount-path``; see pipelines.training_pipeline.ClusterOptions); ``run``
and ``schedule`` submit as ``--service-account`` (default recommender-pipeline, "" = the
namespace's default). ``train`` (kfp.local) ignores all of them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("pipelines")

EXIT_UNREACHABLE = 2


def pipeline_arguments(args: argparse.Namespace) -> dict:
    """Pipeline parameters from the command line. Model settings not given on the command line
    are not passed: the steps read them from their environment (locally this one; on a
    cluster the image's), so the environment is never overruled by a pipeline default."""
    from recsys.config import get_settings

    params = {
        "data_dir": str(args.data_dir or get_settings().data_dir or ""),
        "protocol": args.protocol,
        "baselines": not args.no_baselines,
        "skew_sample_size": args.skew_sample_size,
        "events_dir": args.events_dir,
    }
    optional = {"history_len": args.history_len, "embedding_dim": args.embedding_dim,
                "top_k_candidates": args.top_k_candidates, "ranker_rounds": args.ranker_rounds,
                "gate_margin": args.gate_margin, "feast_project": args.feast_project,
                "skew_threshold": args.skew_threshold, "events_until": args.events_until}
    return {**params, **{k: v for k, v in optional.items() if v is not None}}


def local_arguments(args: argparse.Namespace) -> dict:
    """:func:`pipeline_arguments` with every optional parameter filled from the settings: kfp.local
    (2.17) cannot run a pipeline whose optional parameters are left unset ("Unknown value type"),
    and locally the steps read the same environment anyway."""
    from recsys.config import get_settings

    s = get_settings()
    env = {"history_len": s.history_len, "embedding_dim": s.embedding_dim, "top_k_candidates": s.top_k_candidates,
           "ranker_rounds": s.lgbm_n_estimators, "gate_margin": s.gate_margin, "feast_project": s.feast_project,
           "skew_threshold": s.skew_threshold, "events_until": int(time.time())}
    params = {**env, **pipeline_arguments(args)}
    if params["events_dir"]:
        params["events_dir"] = str(Path(params["events_dir"]).resolve())
    return params


def _pin_local_state() -> None:
    """Absolute RUNS_DIR / FEAST_REPO_PATH in the environment, so every subprocess agrees."""
    from recsys.config import get_settings
    from recsys.online.feature_store import resolve_repo_path

    s = get_settings()
    os.environ["RUNS_DIR"] = str(s.runs_dir.resolve())
    os.environ["FEAST_REPO_PATH"] = str(resolve_repo_path(settings=s))
    get_settings.cache_clear()


def step_table(run_dir: Path, started: float) -> list[dict]:
    """Per task: wall seconds (previous task's end -> this task's end, subprocess start-up included)
    and the seconds measured inside the step; from each task's executor_output.json."""
    from pipelines.training_pipeline import STEPS

    rows, prev = [], started
    for task in STEPS:
        f = run_dir / task / "executor_output.json"
        if not f.exists():
            rows.append({"step": task, "wall": None, "inside": None})
            continue
        end = f.stat().st_mtime
        inside = None
        for art in json.loads(f.read_text()).get("artifacts", {}).values():
            for a in art.get("artifacts", []):
                inside = a.get("metadata", {}).get("seconds", inside)
        rows.append({"step": task, "wall": end - prev, "inside": inside})
        prev = end
    return rows


def _outputs(run_dir: Path, task: str, name: str) -> tuple[str, dict]:
    f = run_dir / task / "executor_output.json"
    if not f.exists():
        return "", {}
    a = json.loads(f.read_text())["artifacts"][name]["artifacts"][0]
    return a["uri"], a.get("metadata", {})


def preflight(args: argparse.Namespace) -> str | None:
    """What the local run needs before any step starts: the data (DATA_DIR, or a verified
    download) and, with REDIS_URL, a reachable Redis. None when all is there, else the one line
    that says what failed and what to set."""
    from recsys.config import get_settings
    from recsys.data.movielens import DataFormatError, resolve_data_dir

    s = get_settings()
    try:
        data_dir = resolve_data_dir(args.data_dir or None)
    except DataFormatError as exc:
        return str(exc)
    if not any((data_dir / f).is_file() for f in ("ratings.dat", "interactions.parquet", "interactions.csv")):
        return (f"{data_dir}: neither GroupLens files (ratings.dat) nor an interaction log (interactions.parquet|csv "
                "+ items.parquet|csv); set DATA_DIR to one of them")
    args.data_dir = str(data_dir)
    if s.redis_url:
        import redis

        try:
            redis.Redis.from_url(s.redis_url, socket_connect_timeout=2, socket_timeout=2).ping()
        except redis.RedisError as exc:
            return (f"REDIS_URL {s.redis_url}: unreachable ({exc}); the materialize step writes the online store "
                    "there. Start Redis, or unset REDIS_URL for the embedded SQLite store")
    return None


def cmd_train(args: argparse.Namespace) -> int:
    from kfp import local

    from pipelines.training_pipeline import PIPELINE_NAME, training_pipeline
    from recsys.config import get_settings

    _pin_local_state()
    problem = preflight(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_UNREACHABLE
    s = get_settings()
    root = s.runs_dir / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    params = local_arguments(args)
    print(f"== training pipeline (kfp.local, SubprocessRunner) -> {root}", flush=True)
    print("   parameters: " + json.dumps(params), flush=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    before = set(root.iterdir())
    started = time.time()
    status = 0
    try:
        training_pipeline(**params)
    except RuntimeError as exc:
        print(f"\npipeline failed: {exc}", file=sys.stderr)
        status = 1
    total = time.time() - started
    new = sorted(
        (p for p in root.iterdir() if p not in before and p.name.startswith(PIPELINE_NAME)),
        key=lambda p: p.stat().st_mtime,
    )
    if not new:
        print("no run directory was written", file=sys.stderr)
        return status or 1
    run_dir = new[-1]
    print_summary(run_dir, started, total, s)
    return status


def print_summary(run_dir: Path, started: float, total: float, s) -> None:
    rows = step_table(run_dir, started)
    print("\n== per-step times (wall: includes the subprocess start-up and imports; inside: the step's own code)")
    print(f"   {'step':<18}{'wall s':>10}{'inside s':>10}")
    for r in rows:
        wall = f"{r['wall']:.1f}" if r["wall"] is not None else "-"
        inside = f"{r['inside']:.1f}" if r["inside"] is not None else "-"
        print(f"   {r['step']:<18}{wall:>10}{inside:>10}")
    print(f"   {'total':<18}{total:>10.1f}")
    bundle_uri, bundle_meta = _outputs(run_dir, "package", "bundle")
    _, reg = _outputs(run_dir, "register", "registration")
    _, online = _outputs(run_dir, "materialize", "online")
    _, kl = _outputs(run_dir, "skew", "kl")
    print("\n== results")
    if bundle_meta:
        ndcg, recall = bundle_meta.get("ndcg_at_10", float("nan")), bundle_meta.get("recall_at_10", float("nan"))
        print(f"   bundle        {bundle_uri}  (version {bundle_meta.get('version')}, "
              f"protocol {bundle_meta.get('protocol')}, ndcg@10 {ndcg:.4f}, recall@10 {recall:.4f})")
        report = Path(bundle_uri) / "report.json"
        if report.exists():
            models = json.loads(report.read_text())["models"]
            print("   " + "  ".join(f"{m} ndcg@10 {v['ndcg@10']:.4f}" for m, v in models.items()))
    if reg:
        version = int(float(reg.get("version", 0)))
        print(f"   MLflow        {s.tracking_uri()}  model {reg.get('model_name')} v{version} "
              f"-> @{reg.get('alias')}; run {reg.get('run_id')}")
        print(f"                 {reg.get('reason')}")
        print(f"                 storageUri {reg.get('artifact_uri')}  (the version's source: the bundle)")
    if online:
        print(f"   Feast         project {online.get('project')}, online store {online.get('online_store')}, "
              f"{int(online.get('users', 0))} users / {int(online.get('items', 0))} items; "
              f"registry {online.get('registry')}")
    if kl:
        print(f"   skew          flagged {kl.get('flagged')} (threshold {kl.get('threshold')}, "
              f"sample {int(kl.get('sample', 0))})")
    print(f"   kfp.local     {run_dir}")


def cluster_options(args: argparse.Namespace):
    """The pipeline's :class:`~pipelines.training_pipeline.ClusterOptions` from the command line."""
    from pipelines.training_pipeline import ClusterOptions

    return ClusterOptions(mlflow_secret=args.mlflow_secret, data_pvc=args.data_pvc,
                          data_mount_path=args.data_mount_path)


def compile_for_submission(args: argparse.Namespace, directory: Path) -> str:
    """The pipeline compiled with the command line's cluster options into ``directory`` (the
    checked-in ``training_pipeline.yaml`` is written by ``compile`` alone)."""
    from pipelines.training_pipeline import compile_pipeline

    return str(compile_pipeline(directory / "training_pipeline.yaml", cluster_options(args)))


def cmd_compile(args: argparse.Namespace) -> int:
    from pipelines.training_pipeline import compile_pipeline

    path = compile_pipeline(args.output, cluster_options(args))
    print(f"wrote {path}")
    return 0


def check_host(host: str, timeout: float = 5.0) -> str | None:
    """None when ``host`` answers HTTP, else the reason it does not."""
    import requests

    try:
        requests.get(host.rstrip("/") + "/apis/v2beta1/healthz", timeout=timeout)
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def cmd_run(args: argparse.Namespace) -> int:
    try:
        cluster_options(args)
    except ValueError as exc:
        print(f"pipeline-run: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    client = _client_or_exit(args, "pipeline-run")
    if client is None:
        return EXIT_UNREACHABLE
    params = pipeline_arguments(args)
    with tempfile.TemporaryDirectory(prefix="recsys-pipeline-") as tmp:
        run = client.create_run_from_pipeline_package(
            compile_for_submission(args, Path(tmp)), arguments=params, experiment_name=args.experiment,
            enable_caching=False, service_account=args.service_account or None)
    print(f"submitted run {run.run_id} (experiment {args.experiment}, service account "
          f"{args.service_account or 'the namespace default'})")
    return 0


# KFP's cron has six fields, seconds first (robfig/cron): every day at 03:00.
DEFAULT_CRON = "0 0 3 * * *"
# The Kubernetes service account of the runs' pods (manifests/base/pipeline-serviceaccount.yaml).
DEFAULT_SERVICE_ACCOUNT = "recommender-pipeline"


def schedule_request(args: argparse.Namespace, package_path: str | None = None) -> dict:
    """Keyword arguments of ``kfp.Client.create_recurring_run`` for ``make pipeline-schedule``:
    the compiled pipeline (``package_path``, default the checked-in YAML), retraining on the
    event archive of the data volume with each run's own start as the cut-off (``events_until``
    left unset), one run at a time, no catch-up of missed runs."""
    from pipelines.training_pipeline import PIPELINE_NAME, YAML_PATH

    fields = args.cron.split()
    if len(fields) != 6:
        raise ValueError(f"--cron {args.cron!r}: KFP needs six fields, seconds first "
                         f"(e.g. {DEFAULT_CRON!r} = daily 03:00)")
    cluster = cluster_options(args)
    if not args.events_dir and not cluster.data_pvc:
        raise ValueError("--data-pvc '': no data volume, so no event archive at its default place; "
                         "give --events-dir (a path inside the image)")
    params = pipeline_arguments(args)
    params.pop("events_until", None)
    params["events_dir"] = args.events_dir or cluster.events_dir()
    return {"job_name": args.job_name or f"{PIPELINE_NAME}-retrain", "cron_expression": args.cron,
            "params": params, "pipeline_package_path": str(package_path or YAML_PATH), "max_concurrency": 1,
            "no_catchup": True, "enable_caching": False, "service_account": args.service_account or None,
            "description": f"retrain on the event archive {params['events_dir']} ({args.cron})"}


def _client_or_exit(args: argparse.Namespace, what: str):
    host = args.host or os.environ.get("KFP_HOST", "")
    if not host:
        print(f"{what}: set KFP_HOST (e.g. make {what} KFP_HOST=http://localhost:8080)", file=sys.stderr)
        return None
    if "://" not in host:
        host = "http://" + host
    problem = check_host(host)
    if problem:
        print(f"{what}: KFP endpoint {host} is unreachable ({problem}).\n"
              "  Port-forward the KFP UI/API (kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80) "
              "or use `make train` to run locally.", file=sys.stderr)
        return None
    import kfp

    return kfp.Client(host=host)


def cmd_schedule(args: argparse.Namespace) -> int:
    try:
        schedule_request(args)
    except ValueError as exc:
        print(f"pipeline-schedule: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    client = _client_or_exit(args, "pipeline-schedule")
    if client is None:
        return EXIT_UNREACHABLE
    experiment = client.create_experiment(args.experiment)
    with tempfile.TemporaryDirectory(prefix="recsys-pipeline-") as tmp:
        request = schedule_request(args, compile_for_submission(args, Path(tmp)))
        job = client.create_recurring_run(experiment_id=experiment.experiment_id, **request)
    print(f"recurring run {job.recurring_run_id} ({request['job_name']}): {request['cron_expression']} "
          f"in experiment {args.experiment}, events from {request['params']['events_dir']}")
    return 0


def _add_cluster_options(sp: argparse.ArgumentParser) -> None:
    from pipelines.training_pipeline import DEFAULT_CLUSTER as d

    sp.add_argument("--mlflow-secret", default=d.mlflow_secret,
                    help="Secret whose MLflow / object-storage keys become the register step's environment "
                         f"(default {d.mlflow_secret!r}; '' = none)")
    sp.add_argument("--data-pvc", default=d.data_pvc,
                    help="PVC with the data and the event archive, mounted on the ingest step "
                         f"(default {d.data_pvc!r}; '' = none)")
    sp.add_argument("--data-mount-path", default=d.data_mount_path,
                    help=f"where the data PVC is mounted (default {d.data_mount_path!r})")


def parser() -> argparse.ArgumentParser:
    from pipelines.training_pipeline import SKEW_SAMPLE_SIZE
    from recsys.data.splits import PROTOCOLS

    p = argparse.ArgumentParser(
        prog="python -m pipelines", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    commands = {"train": ("run locally with kfp.local", cmd_train), "run": ("submit to a KFP endpoint", cmd_run),
                "schedule": ("create a KFP recurring run that retrains on the event archive", cmd_schedule)}
    for name, (helptext, func) in commands.items():
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("--data-dir", default="", help="GroupLens ml-1m directory (default DATA_DIR; empty = download)")
        sp.add_argument("--protocol", default="user-temporal", choices=PROTOCOLS)
        sp.add_argument("--history-len", type=int, default=None, help="default HISTORY_LEN")
        sp.add_argument("--embedding-dim", type=int, default=None, help="default EMBEDDING_DIM")
        sp.add_argument("--top-k-candidates", type=int, default=None, help="default TOP_K_CANDIDATES")
        sp.add_argument("--ranker-rounds", type=int, default=None, help="default LGBM_N_ESTIMATORS")
        sp.add_argument("--gate-margin", type=float, default=None,
                        help="champion gate: promote when the lower bound of the 95%% paired-bootstrap interval of "
                             "ndcg@10 (new - champion, same test users) is above this (default GATE_MARGIN)")
        sp.add_argument("--no-baselines", action="store_true", help="skip the popularity/EASE/iALS baselines")
        sp.add_argument("--feast-project", default=None, help="default FEAST_PROJECT")
        sp.add_argument("--skew-threshold", type=float, default=None, help="default SKEW_THRESHOLD")
        sp.add_argument("--skew-sample-size", type=int, default=SKEW_SAMPLE_SIZE,
                        help=f"users read back from the online store by the skew check (default {SKEW_SAMPLE_SIZE})")
        sp.add_argument("--events-dir", default="", help="train on the event archive too (e.g. "
                        "runs/events/archive, EVENT_ARCHIVE_DIR); default none (schedule: "
                        "<data-mount-path>/events/archive)")
        sp.add_argument("--events-until", type=int, default=None, help="the archive's cut-off, epoch seconds "
                        "(default: when the run starts)")
        sp.set_defaults(func=func)
    for name in ("run", "schedule"):
        sub.choices[name].add_argument("--host", default="", help="KFP endpoint (default KFP_HOST)")
        sub.choices[name].add_argument("--experiment", default="movielens-recommender")
        sub.choices[name].add_argument("--service-account", default=DEFAULT_SERVICE_ACCOUNT,
                                       help="Kubernetes service account of the runs' pods "
                                            f"(default {DEFAULT_SERVICE_ACCOUNT!r}; '' = the namespace's default)")
        _add_cluster_options(sub.choices[name])
    sched = sub.choices["schedule"]
    sched.add_argument("--cron", default=DEFAULT_CRON,
                       help=f"KFP cron, six fields, seconds first (default {DEFAULT_CRON!r})")
    sched.add_argument("--job-name", default="", help="recurring run name (default <pipeline>-retrain)")
    cp = sub.add_parser("compile", help="write the pipeline IR YAML")
    cp.add_argument("--output", default=str(Path(__file__).with_name("training_pipeline.yaml")))
    _add_cluster_options(cp)
    cp.set_defaults(func=cmd_compile)
    return p


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    from components import setup_logging

    args = parser().parse_args(argv)
    try:
        setup_logging()
        return args.func(args)
    except ValidationError as exc:  # a bad environment variable (recsys.config.Settings)
        from recsys.config import describe_settings_error

        print(f"error: {describe_settings_error(exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE


if __name__ == "__main__":
    sys.exit(main())
