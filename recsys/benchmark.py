"""Offline quality benchmark: every model, both protocols, one command.

    python -m recsys.benchmark --data-dir ../shared/data/ml-1m-half --out reports

writes ``reports/quality-<protocol>.json`` (machine-readable) and ``reports/quality.md`` with
the tables and an NDCG@K plot per protocol (``reports/quality-<protocol>-ndcg.png``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

from recsys.config import Settings
from recsys.data import DataFormatError, load_movielens, resolve_data_dir
from recsys.evaluate import evaluate_all
from recsys.split import PROTOCOLS
from recsys.train import settings_record, train_models

log = logging.getLogger("recsys.benchmark")
ORDER = ("popularity", "ease", "ials", "cooc", "two_tower", "two_tower+ranker")
KS = (1, 5, 10, 20, 50, 100)


def run_protocol(ml, protocol: str, settings: Settings, progress: bool = True) -> dict:
    t0 = time.perf_counter()
    tm = train_models(ml, protocol, settings, progress=progress)
    models, funnel, eval_seconds = evaluate_all(tm, settings)
    lv = tm.level0
    seconds = {**tm.seconds, **eval_seconds, "total": time.perf_counter() - t0}
    return {
        "protocol": protocol,
        "dataset": {
            "users": int(lv.train["user_id"].nunique()), "items": len(lv.catalog), "train": int(len(lv.train)),
            "test": int(sum(len(v) for v in lv.labels.values())), "test_users": len(lv.labels),
            "fingerprint": ml.fingerprint(),
        },
        "models": {name: models[name] for name in ORDER if name in models},
        "funnel": funnel,
        "index": {k: v for k, v in tm.index_stats.__dict__.items()},
        "two_tower": {k: v for k, v in tm.two_tower_history.items()},
        "ranker": {"info": tm.ranker.info, "top_features_gain": tm.ranker.top_features(10)},
        "ratios_vs_ease": {
            m: {metric: (models[m][metric] / models["ease"][metric] if models["ease"][metric] else None) for metric in ("ndcg@10", "hr@10", "recall@10")}
            for m in models if m != "ease"
        },
        "seconds": seconds,
    }


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, m in report["models"].items():
        ax.plot(KS, [m[f"ndcg@{k}"] for k in KS], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xticks(KS, [str(k) for k in KS])
    ax.set_xlabel("K")
    ax.set_ylabel("NDCG@K")
    ax.set_title(f"NDCG@K, {report['protocol']} split")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(report: dict) -> str:
    cols = ("ndcg@10", "recall@10", "recall@20", "hr@10", "mrr", "coverage@10", "diversity@10")
    lines = ["| model | " + " | ".join(cols) + " | NDCG@10 / EASE |", "|---" * (len(cols) + 2) + "|"]
    ease = report["models"]["ease"]["ndcg@10"]
    for name, m in report["models"].items():
        lines.append(f"| {name} | " + " | ".join(f"{m[c]:.4f}" for c in cols) + f" | {m['ndcg@10'] / ease:.2f}x |")
    return "\n".join(lines)


def write_markdown(reports: list[dict], out: Path, command: str) -> None:
    parts = [
        "# Offline quality report",
        "",
        f"Produced by `{command}` on {platform.node() or 'this machine'} "
        f"({platform.processor() or platform.machine()}, Python {platform.python_version()}).",
        "Full-catalog ranking over train items, each user's train items excluded; metric definitions in "
        "`recsys/metrics.py`. Numbers are as measured by that run, not edited.",
    ]
    for r in reports:
        d, f, s = r["dataset"], r["funnel"], r["seconds"]
        parts += [
            "", f"## `{r['protocol']}`", "",
            f"{d['users']} users, {d['items']} items, {d['train']} train / {d['test']} test interactions "
            f"({d['test_users']} test users).", "",
            _table(r), "",
            f"![NDCG@K]({Path(r['plot']).name})", "",
            "Funnel: " + ", ".join(f"{k} = {v:.4f}" for k, v in f.items()) + ".",
            f"Index: {r['index']['kind']} nlist={r['index']['nlist']} nprobe={r['index']['nprobe']} "
            f"(recall@{r['index']['k']} vs exact {r['index']['recall_at_k_vs_exact']:.4f}; "
            f"at the configured nprobe={r['index']['nprobe_start']}: {r['index']['recall_at_start_nprobe']:.4f}).",
            f"Two-tower: best epoch {r['two_tower']['best_epoch']} (validation recall@100 "
            f"{r['two_tower']['best_val_recall']:.4f}). Ranker: {r['ranker']['info']['best_iteration']} trees, "
            f"validation NDCG@10 {r['ranker']['info']['valid_ndcg@10']:.4f}; top features by gain: "
            + ", ".join(n for n, _ in r["ranker"]["top_features_gain"][:6]) + ".",
            "", "Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in s.items()) + ".",
        ]
    out.write_text("\n".join(parts) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="GroupLens ml-1m directory (default: DATA_DIR, else download)")
    p.add_argument("--out", default="reports", help="report directory")
    p.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated: user-temporal,loo")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    try:
        ml = load_movielens(resolve_data_dir(args.data_dir or None))
    except DataFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    protocols = [x.strip() for x in args.protocols.split(",") if x.strip()]
    for proto in protocols:
        if proto not in PROTOCOLS:
            print(f"error: unknown protocol {proto!r}; choose from {PROTOCOLS}", file=sys.stderr)
            return 2
    reports = []
    t0 = time.perf_counter()
    for proto in protocols:
        log.info("protocol %s", proto)
        r = run_protocol(ml, proto, settings, progress=not args.no_progress)
        r["settings"] = settings_record(settings)
        r["plot"] = str(out / f"quality-{proto}-ndcg.png")
        _plot(r, Path(r["plot"]))
        (out / f"quality-{proto}.json").write_text(json.dumps(r, indent=2, default=float))
        reports.append(r)
        m = r["models"]
        log.info("%s: two_tower+ranker ndcg@10 %.4f (%.2fx EASE), hr@10 %.4f (%.2fx EASE)", proto,
                 m["two_tower+ranker"]["ndcg@10"], m["two_tower+ranker"]["ndcg@10"] / m["ease"]["ndcg@10"],
                 m["two_tower+ranker"]["hr@10"], m["two_tower+ranker"]["hr@10"] / m["ease"]["hr@10"])
    command = "make benchmark-quality DATA_DIR=" + str(args.data_dir or settings.data_dir or "<download>")
    write_markdown(reports, out / "quality.md", command)
    total = time.perf_counter() - t0
    with (out / "quality.md").open("a") as fh:
        fh.write(f"\nWhole benchmark: {total:.0f} s wall clock.\n")
    print(f"wrote {out / 'quality.md'} and {', '.join(str(out / f'quality-{p}.json') for p in protocols)} in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
