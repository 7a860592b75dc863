"""Choose SASRec's hyper-parameters on the validation level only (never on test).

Every grid point trains on level 2's history with early stopping on NDCG@10 of level 2's
held-out labels (recsys.training.sasrec.fit_on_validation); the best point by that NDCG@10 is
the selection. Test labels are never built. Writes ``reports/sasrec-tuning.json``: per point the
hyper-parameters, NDCG@10 per epoch, best epoch, seconds per epoch and seconds in all.

    python scripts/tune_sasrec.py --data-dir ../shared/data/ml-1m-half --protocol user-temporal
    python scripts/tune_sasrec.py ... --max-len 50,200 --dropout 0.2,0.5 --max-epochs 20

Unlisted hyper-parameters are the SASREC_* settings (environment variables).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's recsys first

from recsys.config import Settings  # noqa: E402
from recsys.data.interactions import load_data  # noqa: E402
from recsys.data.splits import PROTOCOLS, split  # noqa: E402
from recsys.models.sasrec import SASRecConfig  # noqa: E402
from recsys.training.levels import Level, level_splits, make_level  # noqa: E402
from recsys.training.sasrec import fit_on_validation  # noqa: E402

log = logging.getLogger("tune_sasrec")
GRID_FIELDS = {"max_len": int, "dropout": float, "dim": int, "layers": int, "learning_rate": float,
               "batch_size": int}


def validation_level(data_dir: str, protocol: str, history_len: int) -> Level:
    """Level 2 of ``protocol`` (history and held-out labels carved out of train only)."""
    data = load_data(data_dir)
    train, test = split(data.interactions, protocol)
    return make_level(data, *level_splits(train, test, protocol)[2], history_len)


def grid_points(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every combination of the listed values (``--max-len 50,200`` ...)."""
    axes = {name: [cast(v) for v in getattr(args, name).split(",")]
            for name, cast in GRID_FIELDS.items() if getattr(args, name)}
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def run_point(level: Level, config: SASRecConfig) -> dict[str, Any]:
    t = time.perf_counter()
    model = fit_on_validation(level, config)
    h = model.history
    return {"hyper_parameters": config.record(), "best_val_ndcg@10": h["best_val_ndcg10"],
            "best_epoch": h["best_epoch"], "epochs_run": h["epochs"], "val_ndcg@10": h["val_ndcg@10"],
            "loss": h["loss"], "seconds_per_epoch": sum(h["epoch_seconds"]) / max(len(h["epoch_seconds"]), 1),
            "seconds": time.perf_counter() - t}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="GroupLens or interaction-log directory")
    p.add_argument("--protocol", default="user-temporal", choices=PROTOCOLS)
    p.add_argument("--out", default=str(REPO / "reports" / "sasrec-tuning.json"))
    p.add_argument("--max-len", dest="max_len", default="50,200", help="comma-separated values")
    p.add_argument("--dropout", default="0.2,0.5")
    p.add_argument("--dim", default="")
    p.add_argument("--layers", default="")
    p.add_argument("--learning-rate", dest="learning_rate", default="")
    p.add_argument("--batch-size", dest="batch_size", default="")
    p.add_argument("--max-epochs", type=int, default=None, help="cap per point (default SASREC_MAX_EPOCHS)")
    p.add_argument("--patience", type=int, default=None, help="default SASREC_PATIENCE")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    fixed = {k: v for k, v in (("max_epochs", args.max_epochs), ("patience", args.patience)) if v is not None}
    t0 = time.perf_counter()
    level = validation_level(args.data_dir, args.protocol, settings.history_len)
    log.info("level 2: %d train rows, %d items, %d labelled users (%.1f s)", len(level.train), len(level.catalog),
             len(level.labels), time.perf_counter() - t0)
    results = []
    for point in grid_points(args):
        res = run_point(level, SASRecConfig.from_settings(settings, **{**point, **fixed}))
        log.info("%s: val ndcg@10 %.4f at epoch %d of %d, %.1f s/epoch", point, res["best_val_ndcg@10"],
                 res["best_epoch"], res["epochs_run"], res["seconds_per_epoch"])
        results.append({"point": point, **res})
    best = max(results, key=lambda r: r["best_val_ndcg@10"])
    report = {"protocol": args.protocol, "data_dir": str(args.data_dir), "selected_on": "level-2 validation NDCG@10",
              "level2": {"train": len(level.train), "items": len(level.catalog), "labelled_users": len(level.labels)},
              "best": {"point": best["point"], "hyper_parameters": best["hyper_parameters"],
                       "best_val_ndcg@10": best["best_val_ndcg@10"], "best_epoch": best["best_epoch"]},
              "grid": results, "seconds": time.perf_counter() - t0}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"best {best['point']}: val ndcg@10 {best['best_val_ndcg@10']:.4f} (epoch {best['best_epoch']})"
          f" -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
