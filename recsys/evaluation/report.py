"""The quality benchmark's report: markdown tables and an NDCG@K plot per protocol."""

from __future__ import annotations

import platform
from pathlib import Path

from recsys.constants import PRIMARY_MODEL

KS = (1, 5, 10, 20, 50, 100)


def plot_ndcg(report: dict, path: Path) -> None:
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


def table(report: dict) -> str:
    cols = ("ndcg@10", "recall@10", "recall@20", "hr@10", "mrr", "coverage@10", "diversity@10")
    lines = ["| model | " + " | ".join(cols) + " | NDCG@10 95% CI | NDCG@10 / EASE |", "|---" * (len(cols) + 3) + "|"]
    ease = report["models"]["ease"]["ndcg@10"]
    for name, m in report["models"].items():
        ci = m.get("ndcg@10_ci95")
        ci_text = f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "-"
        lines.append(f"| {name} | " + " | ".join(f"{m[c]:.4f}" for c in cols) + f" | {ci_text} | "
                     f"{m['ndcg@10'] / ease:.2f}x |")
    return "\n".join(lines)


def extras(report: dict) -> list[str]:
    """The comparison with the best baseline, the SASRec record and the ablations, as markdown lines."""
    out: list[str] = []
    vs = report.get("versus_best_baseline")
    if vs:
        for name in dict.fromkeys([vs["best_baseline"], "sasrec"]):
            d = vs.get(name)
            if d:
                lo, hi = d["ndcg@10_diff_ci95"]
                out.append(f"{PRIMARY_MODEL} - {name}: NDCG@10 {d['ndcg@10_diff']:+.4f} (95% CI [{lo:+.4f}, "
                           f"{hi:+.4f}], paired over users; {100 * (d['relative'] or 0):+.1f}% relative).")
    sr = report.get("sasrec")
    if sr:
        out.append(f"SASRec: {sr['hyper_parameters']}, best epoch {sr['best_epoch']} of {sr['epochs_run']} "
                   f"(validation NDCG@10 {sr['best_val_ndcg@10']:.4f}), trained in {sr['train_seconds']:.0f} s.")
    ab = report.get("ablations", {})
    if "mmr" in ab:
        out += ["", "| MMR lambda | NDCG@10 | coverage@10 | diversity@10 |", "|---|---|---|---|"]
        out += [f"| {lam} | {m['ndcg@10']:.4f} | {m['coverage@10']:.4f} | {m['diversity@10']:.4f} |"
                for lam, m in ab["mmr"].items()]
    if "cold_warm" in ab:
        out += ["", f"| train history | users | {PRIMARY_MODEL} NDCG@10 | SASRec | EASE |", "|---|---|---|---|---|"]
        for bucket, row in ab["cold_warm"].items():
            cells = [f"{row[n]['ndcg@10']:.4f}" if n in row else "-" for n in (PRIMARY_MODEL, "sasrec", "ease")]
            out.append(f"| {bucket} | {row['users']} | " + " | ".join(cells) + " |")
    if "no_ranker" in ab:
        out.append(f"\nWithout the ranker (two-tower alone): NDCG@10 {ab['no_ranker']['ndcg@10']:.4f}.")
    return out + retrained_lines(ab)


def retrained_lines(ab: dict) -> list[str]:
    """The ablations that retrain (recsys.evaluation.retrained), one table row each."""
    rows = [(k, ab[k]) for k in ab if k == "no_cooc" or k.startswith("history_len_")]
    if not rows:
        return []
    out = ["", f"| retrained with one change | {PRIMARY_MODEL} NDCG@10 [95% CI] | minus the main run [95% CI] | "
               "two-tower alone NDCG@10 | merged candidates recall | seconds |", "|---|---|---|---|---|---|"]
    for key, r in rows:
        lo, hi = r["ndcg@10_ci95"]
        if r.get("main_run"):
            diff, secs = "(the main run)", "-"
        else:
            dlo, dhi = r["ndcg@10_diff_ci95"]
            diff, secs = f"{r['ndcg@10_diff_vs_main']:+.4f} [{dlo:+.4f}, {dhi:+.4f}]", f"{r['seconds']:.0f}"
        label = "without the co-occurrence channel" if key == "no_cooc" else key.replace("_", " ")
        out.append(f"| {label} | {r['ndcg@10']:.4f} [{lo:.4f}, {hi:.4f}] | {diff} | {r['two_tower_ndcg@10']:.4f} | "
                   f"{r['merged_candidates_recall']:.4f} | {secs} |")
    return out


def write_markdown(reports: list[dict], out: Path, command: str) -> None:
    parts = [
        "# Offline quality report",
        "",
        f"Produced by `{command}` on {platform.node() or 'this machine'} "
        f"({platform.processor() or platform.machine()}, Python {platform.python_version()}).",
        "Full-catalog ranking over train items, each user's train items excluded; metric definitions in "
        "`recsys/evaluation/metrics.py`. Numbers are as measured by that run, not edited.",
    ]
    for r in reports:
        d, f, s = r["dataset"], r["funnel"], r["seconds"]
        parts += [
            "", f"## `{r['protocol']}`", "",
            f"{d['users']} users, {d['items']} items, {d['train']} train / {d['test']} test interactions "
            f"({d['test_users']} test users).", "",
            table(r), "", *extras(r), "",
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
