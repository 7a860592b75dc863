"""Offline quality benchmark: every model and baseline (SASRec included), three protocols, one command.

    python -m recsys.evaluation.benchmark --data-dir ../shared/data/ml-1m-half --out reports

writes ``reports/quality-<protocol>.json`` (machine-readable: every model's metrics with
``<metric>_ci95`` paired-bootstrap intervals, ``versus_best_baseline``, ``ablations``, the
SASRec record) and ``reports/quality.md`` with the tables and an NDCG@K plot per protocol
(``reports/quality-<protocol>-ndcg.png``). The data is read like the pipeline reads it:
GroupLens files or a team's own interaction log (:func:`recsys.data.interactions.load_data`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from recsys.config import Settings, describe_settings_error
from recsys.constants import PRIMARY_MODEL
from recsys.data.interactions import load_data
from recsys.data.movielens import DataFormatError, InteractionData, resolve_data_dir
from recsys.data.splits import PROTOCOLS
from recsys.evaluation.ablations import ablations, add_sasrec, versus_best_baseline
from recsys.evaluation.harness import evaluate_models
from recsys.evaluation.report import plot_ndcg, write_markdown
from recsys.evaluation.retrained import retrained_ablations
from recsys.training.run import settings_record, train_models

log = logging.getLogger("recsys.evaluation.benchmark")
ORDER = ("popularity", "ease", "ials", "sasrec", "cooc", "two_tower", PRIMARY_MODEL)


def run_protocol(data: InteractionData, protocol: str, settings: Settings, progress: bool = True,
                 mmr: bool = True, retrain: bool = False) -> dict:
    """Train and evaluate every model on ``protocol``; the report of that protocol. ``retrain`` adds
    the ablations that retrain (:mod:`recsys.evaluation.retrained`)."""
    t0 = time.perf_counter()
    tm = train_models(data, protocol, settings, progress=progress)
    log.info("%s: models trained in %.0f s; evaluating", protocol, time.perf_counter() - t0)
    ev = evaluate_models(tm.level0, tm.recommender, tm.index_stats, tm.funnel, settings)
    log.info("%s: SASRec (early stopping on level 2, refit on level 0)", protocol)
    sasrec = add_sasrec(tm, ev, settings)
    versus = versus_best_baseline(ev, settings.seed)
    log.info("%s: ablations", protocol)
    extra = ablations(tm, ev, settings.seed, mmr=mmr)
    if retrain:
        t = time.perf_counter()
        extra.update(retrained_ablations(data, tm, ev, settings, progress=progress))
        ev.seconds["ablations_retrained"] = time.perf_counter() - t
    models, funnel = ev.models, ev.funnel
    lv = tm.level0
    seconds = {**tm.seconds, **ev.seconds, "total": time.perf_counter() - t0}
    return {
        "protocol": protocol,
        "dataset": {
            "users": int(lv.train["user_id"].nunique()),
            "items": len(lv.catalog),
            "train": int(len(lv.train)),
            "test": int(sum(len(v) for v in lv.labels.values())),
            "test_users": len(lv.labels),
            "fingerprint": data.fingerprint(),
        },
        "models": {name: models[name] for name in ORDER if name in models},
        "funnel": funnel,
        "index": {k: v for k, v in tm.index_stats.__dict__.items()},
        "two_tower": {k: v for k, v in tm.two_tower_history.items()},
        "ranker": {"info": tm.ranker.info, "top_features_gain": tm.ranker.top_features(10)},
        "sasrec": sasrec,
        "versus_best_baseline": versus,
        "ablations": extra,
        "ratios_vs_ease": {
            m: {
                metric: (models[m][metric] / models["ease"][metric] if models["ease"][metric] else None)
                for metric in ("ndcg@10", "hr@10", "recall@10")
            }
            for m in models
            if m != "ease"
        },
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="GroupLens ml-1m directory (default: DATA_DIR, else download)")
    p.add_argument("--out", default="reports", help="report directory")
    p.add_argument("--protocols", default=",".join(PROTOCOLS), help=f"comma-separated, of {', '.join(PROTOCOLS)}")
    p.add_argument("--no-mmr", action="store_true", help="skip the MMR lambda sweep (4 extra ranking passes)")
    p.add_argument("--retrain-ablations", default="none",
                   help="comma-separated protocols that also get the ablations that retrain (without the "
                        "co-occurrence channel; history length 10/200): a training each, ~15 minutes on "
                        "ML-1M-half user-temporal; 'none' for none (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings()
        data = load_data(resolve_data_dir(args.data_dir or None))
    except DataFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"error: {describe_settings_error(exc)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    protocols = [x.strip() for x in args.protocols.split(",") if x.strip()]
    retrain = [] if args.retrain_ablations == "none" else [x.strip() for x in args.retrain_ablations.split(",")
                                                           if x.strip()]
    for proto in protocols + retrain:
        if proto not in PROTOCOLS:
            print(f"error: unknown protocol {proto!r}; choose from {PROTOCOLS}", file=sys.stderr)
            return 2
    reports = []
    t0 = time.perf_counter()
    for i, proto in enumerate(protocols, start=1):
        log.info("protocol %d/%d: %s (%.0f s so far)", i, len(protocols), proto, time.perf_counter() - t0)
        r = run_protocol(data, proto, settings, progress=not args.no_progress, mmr=not args.no_mmr,
                         retrain=proto in retrain)
        r["settings"] = settings_record(settings)
        r["plot"] = str(out / f"quality-{proto}-ndcg.png")
        plot_ndcg(r, Path(r["plot"]))
        (out / f"quality-{proto}.json").write_text(json.dumps(r, indent=2, default=float))
        reports.append(r)
        m = r["models"]
        best = m[PRIMARY_MODEL]
        vs = r["versus_best_baseline"]
        d = vs[vs["best_baseline"]]
        log.info("%s: %s ndcg@10 %.4f %s; best baseline %s: diff %+.4f, 95%% CI [%+.4f, %+.4f] (%+.1f%%)", proto,
                 PRIMARY_MODEL, best["ndcg@10"], best["ndcg@10_ci95"], vs["best_baseline"], d["ndcg@10_diff"],
                 *d["ndcg@10_diff_ci95"], 100 * (d["relative"] or 0))
    command = "make benchmark-quality DATA_DIR=" + str(args.data_dir or settings.data_dir or "<download>")
    if retrain:
        command += " RETRAIN_ABLATIONS=" + ",".join(retrain)
    write_markdown(reports, out / "quality.md", command)
    total = time.perf_counter() - t0
    with (out / "quality.md").open("a") as fh:
        fh.write(f"\nWhole benchmark: {total:.0f} s wall clock.\n")
    jsons = ", ".join(str(out / f"quality-{p}.json") for p in protocols)
    print(f"wrote {out / 'quality.md'} and {jsons} in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
