"""A/B outcome report from the logged events: per-arm exposure, click and conversion rates, the
lift of each treatment over the control with a 95% interval, and a decision (ship / keep / no
evidence yet). Writes ``<out>/ab-report.json``, ``ab-report.md`` and ``ab-report.png``.

Events come from the event log of this environment (the Redis Stream with ``REDIS_URL``, else
the local log under ``RUNS_DIR``), or from the archive (``--archive DIR``). ``--experiment``
(JSON or @file, default ``AB_EXPERIMENT``) fixes the arms and their order (the first is the
control); without it the arms are the variants seen. See recsys/evaluation/ab.py for the rules.

    make ab-report [AB_ARGS="--archive runs/events/archive"]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load_events(archive: str | None) -> pd.DataFrame:
    from recsys.config import get_settings
    from recsys.online.archive import events_frame, read_archive
    from recsys.online.event_log import open_log

    if archive:
        return read_archive(archive)
    s = get_settings()
    return events_frame(list(open_log(s.redis_url, s.runs_dir, stream=s.event_stream).entries()))


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(report["arms"])
    ctr = [report["arms"][a]["ctr"] for a in arms]
    ci = [report["arms"][a].get("ctr_per_user_ci95", [c, c]) for a, c in zip(arms, ctr)]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.bar(arms, ctr, yerr=[[max(0.0, c - lo) for c, (lo, _) in zip(ctr, ci)],
                            [max(0.0, hi - c) for c, (_, hi) in zip(ctr, ci)]], capsize=6, color="#4c78a8")
    ax.set_ylabel("click-through rate (per impression)")
    ax.set_title("CTR per arm (bars: 95% interval of the per-user rate)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(report: dict, command: str) -> str:
    lines = ["# A/B report", "", f"Produced by `{command}`; control: `{report['control']}`.", "",
             "| arm | users | impressions | clicks | CTR | conversions | conversion rate |",
             "|---|---|---|---|---|---|---|"]
    for a, r in report["arms"].items():
        lines.append(f"| {a} | {r['users']} | {r['impressions']} | {r['clicks']} | {r['ctr']:.4f} | "
                     f"{r['conversions']} | {r['conversion_rate']:.4f} |")
    lines += ["", "| comparison | CTR difference [95% CI] | lift [95% CI] | decision |", "|---|---|---|---|"]
    for name, c in report["comparisons"].items():
        d = c.get("ctr", {})
        if d:
            lo, hi = d["difference_ci95"]
            llo, lhi = d["lift_ci95"]
            lines.append(f"| {name} | {d['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}] | {d['lift']:+.1%} "
                         f"[{llo:+.1%}, {lhi:+.1%}] | **{c['decision']}** ({c['decided_on']}) |")
        else:
            lines.append(f"| {name} | - | - | **{c['decision']}** |")
    lines += ["", "![CTR per arm](ab-report.png)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", default=None, help="read the event archive here instead of the event log")
    ap.add_argument("--experiment", default=None, help="experiment JSON or @file (default AB_EXPERIMENT)")
    ap.add_argument("--out", default="reports")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    from recsys.config import get_settings
    from recsys.evaluation.ab import analyze
    from recsys.online.experiment import ExperimentError, parse_experiment

    raw = a.experiment if a.experiment is not None else get_settings().ab_experiment
    try:
        arms = parse_experiment(raw).arm_names() if raw else None
        report = analyze(load_events(a.archive), arms, n_resamples=a.resamples, seed=a.seed)
    except (ExperimentError, ValueError) as exc:
        print(f"ab-report: {exc}", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ab-report.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out / "ab-report.png")
    (out / "ab-report.md").write_text(markdown(report, "python scripts/ab_report.py " + " ".join(argv or sys.argv[1:])))
    for name, c in report["comparisons"].items():
        print(f"{name}: {c['decision']} ({json.dumps(c.get('ctr', {}))})")
    print(f"wrote {out / 'ab-report.json'}, {out / 'ab-report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
