"""Golden test of the compiled pipeline, and the CLI's errors for an absent KFP endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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

    spec = yaml.safe_load(GOLDEN.read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == len(STEPS)
    for name, ex in executors.items():
        assert ex["container"]["image"] == DEFAULT_IMAGE, name
        assert "pip install" not in " ".join(ex["container"]["command"]), name
    assert set(spec["root"]["inputDefinitions"]["parameters"]) >= {
        "data_dir", "embedding_dim", "top_k_candidates", "ranker_rounds", "gate_margin"}


def test_model_settings_are_optional_so_the_environment_decides():
    """No pipeline default overrules the image's environment: the model settings have none, and
    the steps treat only None as unset (0 is a value)."""
    from recsys.training.steps import settings_with

    params = yaml.safe_load(GOLDEN.read_text())["root"]["inputDefinitions"]["parameters"]
    for name in ("history_len", "embedding_dim", "top_k_candidates", "ranker_rounds", "feast_project",
                 "skew_threshold"):
        assert params[name].get("isOptional") is True and "defaultValue" not in params[name], name
    assert settings_with(cooc_candidates=0).cooc_candidates == 0
    assert settings_with(history_len=None).history_len == settings_with().history_len


def test_every_step_logs_at_log_level_through_one_helper():
    spec = yaml.safe_load(GOLDEN.read_text())
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


def test_pipeline_run_needs_a_reachable_host(capsys):
    from pipelines.__main__ import EXIT_UNREACHABLE, main

    assert main(["run", "--host", ""]) == EXIT_UNREACHABLE or os.environ.get("KFP_HOST")
    assert main(["run", "--host", "http://127.0.0.1:9"]) == EXIT_UNREACHABLE
    assert "unreachable" in capsys.readouterr().err
