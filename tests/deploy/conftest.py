"""Fixtures for the deployment tests: tools installed once, chart staged, everything rendered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import deploytool  # noqa: E402

REPO = deploytool.REPO


@pytest.fixture(scope="session")
def tools() -> dict[str, str]:
    """Run scripts/install-tools.sh (idempotent); skip only when installation is impossible."""
    proc = subprocess.run(["bash", str(REPO / "scripts" / "install-tools.sh")],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        reason = f"scripts/install-tools.sh failed, deploy tools unavailable:\n{proc.stderr[-2000:]}"
        print(reason, file=sys.stderr)
        pytest.skip(reason)
    return {name: deploytool.tool(name) for name in ("helm", "kubectl", "promtool")}


@pytest.fixture(scope="session")
def staged_chart(tools, tmp_path_factory) -> Path:
    return deploytool.stage_chart(REPO / "helm" / "recommender", tmp_path_factory.mktemp("chart"))


@pytest.fixture(scope="session")
def rendered(tools, tmp_path_factory) -> dict[str, list[dict]]:
    """Every rendered set: 'helm/<values set>' and 'manifests/<overlay>' -> documents."""
    out = tmp_path_factory.mktemp("rendered")
    deploytool.render(out)
    result = {}
    for f in sorted(out.rglob("*.yaml")):
        if f.parent.name != "rules":
            result[f"{f.parent.name}/{f.stem}"] = deploytool.docs(f.read_text())
    result["_out"] = out  # type: ignore[assignment]
    return result
