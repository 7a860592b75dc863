"""Command line of the training pipeline (``python -m pipelines <command>``).

* ``train``   run the whole pipeline locally with ``kfp.local`` (subprocesses, no Docker),
              then print per-step times and where the bundle, MLflow and Feast went;
* ``compile`` write the IR YAML (``pipelines/training_pipeline.yaml``);
* ``run``     submit the compiled pipeline to a KFP endpoint (``--host`` / ``KFP_HOST``).

Model settings not exposed as pipeline parameters (epochs, LightGBM leaves...) come from the
environment (see recsys.config), which the local subprocesses inherit.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

log = logging.getLogger("pipelines")

EXIT_UNREACHABLE = 2


def pipeline_arguments(args: argparse.Namespace) -> dict:
    """Pipeline parameters from the command line, defaulting to the settings (environment)."""
    from recsys.config import get_settings

    s = get_settings()
    return {
        "data_dir": str(args.data_dir or s.data_dir or ""),
        "protocol": args.protocol,
        "history_len": s.history_len,
        "embedding_dim": args.embedding_dim or s.embedding_dim,
        "top_k_candidates": args.top_k_candidates or s.top_k_candidates,
        "ranker_rounds": args.ranker_rounds or s.lgbm_n_estimators,
        "baselines": not args.no_baselines,
        "gate_min_delta": args.gate_min_delta,
        "feast_project": args.feast_project or s.feast_project,
        "skew_threshold": s.skew_threshold,
        "skew_sample_size": args.skew_sample_size,
    }


def _pin_local_state() -> None:
    """Absolute RUNS_DIR / FEAST_REPO_PATH in the environment, so every subprocess agrees."""
    from recsys.config import get_settings
    from recsys.feature_store import resolve_repo_path

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


def cmd_train(args: argparse.Namespace) -> int:
    from kfp import local

    from pipelines.training_pipeline import PIPELINE_NAME, training_pipeline
    from recsys.config import get_settings

    _pin_local_state()
    s = get_settings()
    root = s.runs_dir / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    params = pipeline_arguments(args)
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
    new = sorted((p for p in root.iterdir() if p not in before and p.name.startswith(PIPELINE_NAME)), key=lambda p: p.stat().st_mtime)
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
    bundle_uri, bundle_meta = _outputs(run_dir, "evaluate", "bundle")
    _, reg = _outputs(run_dir, "register", "registration")
    _, online = _outputs(run_dir, "materialize", "online")
    _, kl = _outputs(run_dir, "skew", "kl")
    print("\n== results")
    if bundle_meta:
        print(f"   bundle        {bundle_uri}  (version {bundle_meta.get('version')}, protocol {bundle_meta.get('protocol')}, "
              f"ndcg@10 {bundle_meta.get('ndcg_at_10', float('nan')):.4f}, recall@10 {bundle_meta.get('recall_at_10', float('nan')):.4f})")
        report = Path(bundle_uri) / "report.json"
        if report.exists():
            models = json.loads(report.read_text())["models"]
            print("   " + "  ".join(f"{m} ndcg@10 {v['ndcg@10']:.4f}" for m, v in models.items()))
    if reg:
        print(f"   MLflow        {s.tracking_uri()}  model {reg.get('model_name')} v{int(float(reg.get('version', 0)))} "
              f"-> @{reg.get('alias')}; run {reg.get('run_id')}")
        print(f"                 {reg.get('reason')}")
        print(f"                 artifacts {reg.get('artifact_uri')}")
    if online:
        print(f"   Feast         project {online.get('project')}, online store {online.get('online_store')}, "
              f"{int(online.get('users', 0))} users / {int(online.get('items', 0))} items; registry {online.get('registry')}")
    if kl:
        print(f"   skew          flagged {kl.get('flagged')} (threshold {kl.get('threshold')}, sample {int(kl.get('sample', 0))})")
    print(f"   kfp.local     {run_dir}")


def cmd_compile(args: argparse.Namespace) -> int:
    from pipelines.training_pipeline import compile_pipeline

    path = compile_pipeline(args.output)
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
    host = args.host or os.environ.get("KFP_HOST", "")
    if not host:
        print("pipeline-run: set KFP_HOST (e.g. make pipeline-run KFP_HOST=http://localhost:8080)", file=sys.stderr)
        return EXIT_UNREACHABLE
    if "://" not in host:
        host = "http://" + host
    problem = check_host(host)
    if problem:
        print(f"pipeline-run: KFP endpoint {host} is unreachable ({problem}).\n"
              "  Port-forward the KFP UI/API (kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80) "
              "or use `make train` to run locally.", file=sys.stderr)
        return EXIT_UNREACHABLE
    import kfp

    from pipelines.training_pipeline import YAML_PATH, compile_pipeline

    compile_pipeline(YAML_PATH)
    params = pipeline_arguments(args)
    client = kfp.Client(host=host)
    run = client.create_run_from_pipeline_package(str(YAML_PATH), arguments=params, experiment_name=args.experiment,
                                                  enable_caching=False)
    print(f"submitted run {run.run_id} to {host} (experiment {args.experiment})")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name, helptext in (("train", "run locally with kfp.local"), ("run", "submit to a KFP endpoint")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("--data-dir", default="", help="GroupLens ml-1m directory (default DATA_DIR; empty = download)")
        sp.add_argument("--protocol", default="user-temporal", choices=("user-temporal", "loo"))
        sp.add_argument("--embedding-dim", type=int, default=0, help="default EMBEDDING_DIM")
        sp.add_argument("--top-k-candidates", type=int, default=0, help="default TOP_K_CANDIDATES")
        sp.add_argument("--ranker-rounds", type=int, default=0, help="default LGBM_N_ESTIMATORS")
        sp.add_argument("--gate-min-delta", type=float, default=0.0, help="champion gate: new ndcg@10 >= champion's + delta")
        sp.add_argument("--no-baselines", action="store_true", help="skip the popularity/EASE/iALS baselines")
        sp.add_argument("--feast-project", default="", help="default FEAST_PROJECT")
        sp.add_argument("--skew-sample-size", type=int, default=1000)
        sp.set_defaults(func=cmd_train if name == "train" else cmd_run)
    sub.choices["run"].add_argument("--host", default="", help="KFP endpoint (default KFP_HOST)")
    sub.choices["run"].add_argument("--experiment", default="movielens-recommender")
    cp = sub.add_parser("compile", help="write the pipeline IR YAML")
    cp.add_argument("--output", default=str(Path(__file__).with_name("training_pipeline.yaml")))
    cp.set_defaults(func=cmd_compile)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
