"""Static checks of the Dockerfile (no Docker engine here): the contract the manifests rely on."""

from __future__ import annotations

import re

from deploytool import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()


def test_multi_stage_slim_base():
    stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\w+)", DOCKERFILE, re.M)
    assert [s[1] for s in stages] == ["builder", "runtime"]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE


def test_cpu_torch_from_pinned_project_files():
    assert "https://download.pytorch.org/whl/cpu" in DOCKERFILE
    assert '"torch==2.13.0"' in DOCKERFILE
    assert "COPY pyproject.toml" in DOCKERFILE and "tomllib" in DOCKERFILE
    assert "pip install --no-deps ." in DOCKERFILE and "pip check" in DOCKERFILE


def test_non_root_and_entrypoints():
    runtime = DOCKERFILE.split("AS runtime", 1)[1]
    assert re.search(r"^USER 1000:1000$", runtime, re.M)
    assert "useradd --uid 1000" in runtime
    for module in ("predictors.predictor", "predictors.transformer", "kfp.dsl.executor_main"):
        assert module in DOCKERFILE
    assert "HOME=/tmp" in runtime  # read-only root filesystem


def test_dockerignore_excludes_local_state():
    entries = set((REPO / ".dockerignore").read_text().split())
    assert {".venv", "data", "reports", "runs", "mlruns", "*.db", ".git"} <= entries


def test_manifests_use_the_image_entrypoints():
    for f in list((REPO / "manifests").rglob("inferenceservice.yaml")):
        text = f.read_text()
        assert '["python", "-m", "predictors.predictor"]' in text
        assert '["python", "-m", "predictors.transformer"]' in text
