"""Golden test of the compiled pipeline, and the CLI's errors for an absent KFP endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "pipelines" / "training_pipeline.yaml"


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RECSYS_IMAGE"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_compiled_pipeline_matches_the_checked_in_yaml(tmp_path):
    out = tmp_path / "pipeline.yaml"
    subprocess.run(
        [sys.executable, "-m", "pipelines", "compile", "--output", str(out)],
        cwd=ROOT,
        env=_env(),
        check=True,
        capture_output=True,
    )
    assert out.read_text() == GOLDEN.read_text(), (
        "pipeline graph changed: run `make pipeline-compile` and review the diff"
    )


def test_every_step_runs_on_the_project_image_without_pip_install():
    from components import DEFAULT_IMAGE
    from pipelines.training_pipeline import STEPS

    spec = _golden()[0]
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == len(STEPS)
    for name, ex in executors.items():
        assert ex["container"]["image"] == DEFAULT_IMAGE, name
        assert "pip install" not in " ".join(ex["container"]["command"]), name
    assert set(spec["root"]["inputDefinitions"]["parameters"]) >= {
        "data_dir", "embedding_dim", "top_k_candidates", "ranker_rounds", "gate_margin"}


def _golden() -> tuple[dict, dict]:
    """(pipeline spec, Kubernetes platform spec) of the checked-in IR."""
    docs = list(yaml.safe_load_all(GOLDEN.read_text()))
    return docs[0], (docs[1] if len(docs) > 1 else {})


def test_model_settings_are_optional_so_the_environment_decides():
    """No pipeline default overrules the image's environment: the model settings have none, and
    the steps treat only None as unset (0 is a value)."""
    from recsys.training.steps import settings_with

    params = _golden()[0]["root"]["inputDefinitions"]["parameters"]
    for name in ("history_len", "embedding_dim", "top_k_candidates", "ranker_rounds", "gate_margin",
                 "feast_project", "skew_threshold"):
        assert params[name].get("isOptional") is True and "defaultValue" not in params[name], name
    assert settings_with(cooc_candidates=0).cooc_candidates == 0
    assert settings_with(history_len=None).history_len == settings_with().history_len


def test_an_unset_optional_parameter_reaches_only_optional_component_inputs():
    """On a cluster an optional pipeline parameter left unset reaches its tasks as null, which KFP's
    driver accepts only for an optional component input (one with a default): otherwise the task
    fails before it starts ("the resolved input parameter is null")."""
    spec = _golden()[0]
    root = spec["root"]["inputDefinitions"]["parameters"]
    unset = {name for name, p in root.items() if p.get("isOptional") and "defaultValue" not in p}
    checked = set()
    for task_name, task in spec["root"]["dag"]["tasks"].items():
        inputs = spec["components"][task["componentRef"]["name"]]["inputDefinitions"].get("parameters", {})
        for name, value in task["inputs"].get("parameters", {}).items():
            if value.get("componentInputParameter") in unset:
                assert inputs[name].get("isOptional") is True, f"{task_name}.{name}"
                checked.add(value["componentInputParameter"])
    assert checked == unset


def test_one_skew_sample_size_default():
    import inspect

    from pipelines.__main__ import parser
    from recsys.online.skew import online_skew

    default = inspect.signature(online_skew).parameters["sample_size"].default
    assert _golden()[0]["root"]["inputDefinitions"]["parameters"]["skew_sample_size"]["defaultValue"] == default
    assert parser().parse_args(["run"]).skew_sample_size == default


def test_the_ir_connects_mlflow_and_data_tasks_to_the_cluster():
    """kfp-kubernetes platform spec: the MLflow Secret as env on the task that talks to MLflow /
    object storage, the data PVC on the task that reads the data and the event archive."""
    from pipelines.training_pipeline import DEFAULT_CLUSTER, MLFLOW_SECRET_KEYS

    executors = _golden()[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {"exec-register", "exec-ingest"}
    envs = executors["exec-register"]["secretAsEnv"]
    assert [e["secretName"] for e in envs] == ["mlflow-store", "mlflow-store"] == [DEFAULT_CLUSTER.mlflow_secret] * 2
    required, optional = envs
    assert [(k["secretKey"], k["envVar"]) for k in required["keyToEnv"]] == [
        ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"), ("MLFLOW_S3_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"),
        ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"), ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")]
    assert [k["secretKey"] for k in required["keyToEnv"]] == list(MLFLOW_SECRET_KEYS)
    assert required.get("optional", False) is False
    assert [(k["secretKey"], k["envVar"]) for k in optional["keyToEnv"]] == [
        ("MLFLOW_ARTIFACT_ROOT", "MLFLOW_ARTIFACT_ROOT")] and optional["optional"] is True
    assert "pvcMount" not in executors["exec-register"]
    (mount,) = executors["exec-ingest"]["pvcMount"]
    assert mount["mountPath"] == "/data" and mount["pvcNameParameter"]["runtimeValue"]["constant"] == "recommender-data"
    assert "secretAsEnv" not in executors["exec-ingest"]


def test_cluster_names_are_compile_options(tmp_path):
    from pipelines.training_pipeline import ClusterOptions, compile_pipeline

    cluster = ClusterOptions(mlflow_secret="ml", data_pvc="pvc", data_mount_path="/mnt/d")
    out = compile_pipeline(tmp_path / "p.yaml", cluster)
    executors = list(yaml.safe_load_all(out.read_text()))[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert {e["secretName"] for e in executors["exec-register"]["secretAsEnv"]} == {"ml"}
    assert executors["exec-ingest"]["pvcMount"][0]["mountPath"] == "/mnt/d"
    assert executors["exec-ingest"]["pvcMount"][0]["pvcNameParameter"]["runtimeValue"]["constant"] == "pvc"
    bare = compile_pipeline(tmp_path / "bare.yaml", ClusterOptions(mlflow_secret="", data_pvc=""))
    assert len(list(yaml.safe_load_all(bare.read_text()))) == 1  # no platform spec at all
    with pytest.raises(ValueError, match="absolute"):
        ClusterOptions(data_mount_path="data")


def test_every_step_logs_at_log_level_through_one_helper():
    spec = _golden()[0]
    for name, ex in spec["deploymentSpec"]["executors"].items():
        source = " ".join(ex["container"]["command"])
        assert "basicConfig" not in source and "setup_logging()" in source, name


def test_setup_logging_reads_log_level(monkeypatch):
    import logging

    from components import setup_logging
    from recsys.config import get_settings

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setenv("LOG_LEVEL", "debug")
    get_settings.cache_clear()
    try:
        root.handlers = []
        setup_logging()
        assert root.level == logging.DEBUG
    finally:
        for h in root.handlers:
            h.close()
        root.handlers, root.level = handlers, level
        get_settings.cache_clear()


def test_gate_margin_is_left_to_gate_margin_in_the_environment(monkeypatch):
    """Unset on the command line, gate_margin is not sent (the image's GATE_MARGIN decides); kfp.local
    fills it from this environment, like every optional parameter."""
    from pipelines.__main__ import local_arguments, parser, pipeline_arguments
    from recsys.config import get_settings

    monkeypatch.setenv("GATE_MARGIN", "0.01")
    get_settings.cache_clear()
    try:
        assert "gate_margin" not in pipeline_arguments(parser().parse_args(["run"]))
        assert local_arguments(parser().parse_args(["train"]))["gate_margin"] == 0.01
        assert local_arguments(parser().parse_args(["train", "--gate-margin", "0.02"]))["gate_margin"] == 0.02
        assert pipeline_arguments(parser().parse_args(["run", "--gate-margin", "0"]))["gate_margin"] == 0.0
    finally:
        get_settings.cache_clear()


def test_pipeline_run_needs_a_reachable_host(capsys):
    from pipelines.__main__ import EXIT_UNREACHABLE, main

    assert main(["run", "--host", ""]) == EXIT_UNREACHABLE or os.environ.get("KFP_HOST")
    assert main(["run", "--host", "http://127.0.0.1:9"]) == EXIT_UNREACHABLE
    assert "unreachable" in capsys.readouterr().err
