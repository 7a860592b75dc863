"""SASRec with a larger epoch budget than the benchmark's, on the same split and the same test users.

The benchmark caps SASRec at ``SASREC_MAX_EPOCHS`` epochs (early stopping usually ends it first);
this checks what a longer cap would buy: early stopping on level 2 (patience ``SASREC_PATIENCE``), the
level-0 refit for the best epoch count, NDCG@10 on level 0's test users with its 95% interval.
Writes ``reports/sasrec-budget-<protocol>.json``; compare with ``quality-<protocol>.json``.

    python scripts/sasrec_budget.py --data-dir ../shared/data/ml-1m-half --protocol user-temporal --max-epochs 40
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recsys.config import Settings  # noqa: E402
from recsys.data.interactions import load_data  # noqa: E402
from recsys.data.splits import PROTOCOLS  # noqa: E402
from recsys.evaluation.bootstrap import metric_intervals, per_user_metrics  # noqa: E402
from recsys.evaluation.harness import batched  # noqa: E402
from recsys.training.levels import prepare_levels  # noqa: E402
from recsys.training.sasrec import fit_sasrec  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--protocol", default="user-temporal", choices=PROTOCOLS)
    p.add_argument("--max-epochs", type=int, default=40)
    p.add_argument("--out", default=str(REPO / "reports"))
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    t = time.perf_counter()
    s = Settings()
    levels = prepare_levels(load_data(a.data_dir), a.protocol, s.history_len)
    model, record = fit_sasrec(levels, s, max_epochs=a.max_epochs)
    lv = levels.level0
    per_user = per_user_metrics(batched(model.scores, lv.label_states(), lv.catalog), lv.labels)
    out = {"protocol": a.protocol, "max_epochs": a.max_epochs, "ndcg@10": float(per_user["ndcg@10"].mean()),
           **metric_intervals({"ndcg@10": per_user["ndcg@10"]}, seed=s.seed), "users": len(lv.labels),
           "record": record, "seconds": time.perf_counter() - t,
           "command": "python scripts/sasrec_budget.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    path = Path(a.out) / f"sasrec-budget-{a.protocol}.json"
    path.write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(f"sasrec ({a.protocol}, <= {a.max_epochs} epochs, best {record['best_epoch']}): ndcg@10 {out['ndcg@10']:.4f} "
          f"{out['ndcg@10_ci95']} in {out['seconds']:.0f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
