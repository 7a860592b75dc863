"""The canary rollout of a new model version on a Helm release of the recommender chart.

    python scripts/rollout.py canary   --storage-uri s3://.../bundle [--percent 10]
    python scripts/rollout.py promote    # the canary's model gets 100%: it becomes model.storageUri
    python scripts/rollout.py rollback   # all traffic back to model.storageUri, the canary cleared

Each step reads the release's current values (``helm get values -o json``), works out the
``--set`` arguments (:func:`helm_sets`, pure, tested offline) and runs ``helm upgrade
--reuse-values``. ``--dry-run`` prints the command instead. KServe routes
``canary.trafficPercent`` of the traffic to the new revision and the rest to the last one rolled
out fully (Serverless mode; the chart refuses a canary otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class RolloutError(ValueError):
    """The step makes no sense for the release's current values."""


def helm_sets(action: str, current: dict, storage_uri: str | None = None, percent: int | None = None) -> list[str]:
    """The ``--set`` arguments of ``action`` given the release's current values."""
    canary = (current.get("canary") or {}).get("storageUri") or ""
    stable = (current.get("model") or {}).get("storageUri") or ""
    if action == "canary":
        if not storage_uri:
            raise RolloutError("canary: --storage-uri (the new version's bundle URI) is required")
        if storage_uri == stable:
            raise RolloutError(f"canary: {storage_uri} is already the stable model.storageUri")
        sets = [f"canary.storageUri={storage_uri}"]
        if percent is not None:
            if not 1 <= percent <= 99:
                raise RolloutError(f"canary: --percent must be 1..99, got {percent}")
            sets.append(f"canary.trafficPercent={percent}")
        return sets
    if not canary:
        raise RolloutError(f"{action}: no canary is running on this release (canary.storageUri is empty)")
    if action == "promote":
        return [f"model.storageUri={canary}", "canary.storageUri="]
    if action == "rollback":
        return ["canary.storageUri="]
    raise RolloutError(f"unknown action {action!r}")


def helm() -> str:
    local = REPO / "bin" / "helm"
    return str(local) if local.exists() else "helm"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("canary", "promote", "rollback"))
    ap.add_argument("--storage-uri", default=None)
    ap.add_argument("--percent", type=int, default=None)
    ap.add_argument("--release", default=os.environ.get("RELEASE", "recommender"))
    ap.add_argument("--namespace", default=os.environ.get("NAMESPACE", "recommender"))
    ap.add_argument("--values-json", default=None, help="the release's values (default: helm get values)")
    ap.add_argument("--dry-run", action="store_true", help="print the helm command instead of running it")
    a = ap.parse_args(argv)
    try:
        if a.values_json:
            current = json.loads(Path(a.values_json).read_text())
        else:
            got = subprocess.run([helm(), "get", "values", a.release, "-n", a.namespace, "-o", "json"],
                                 capture_output=True, text=True, timeout=60)
            if got.returncode != 0:
                raise RolloutError(f"helm get values {a.release}: {got.stderr.strip() or 'failed'}")
            current = json.loads(got.stdout or "{}") or {}
        sets = helm_sets(a.action, current, a.storage_uri, a.percent)
    except RolloutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cmd = [helm(), "upgrade", a.release, str(REPO / "helm" / "recommender"), "-n", a.namespace, "--reuse-values",
           *[x for s in sets for x in ("--set", s)], "--wait", "--timeout", "10m"]
    if a.dry_run:
        print(shlex.join(cmd))
        return 0
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
