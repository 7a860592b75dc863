"""Prove the A/B machinery: simulated users drive the live transformer with two arms.

1. Train two model versions on the same data: a *better* one, and a *worse* one (the same code
   trained on a random 15% of the interactions: a stale, data-starved model), register both in
   a private MLflow store (v1 = worse, v2 = better; the registry gate decides the aliases).
2. A/B: two predictors (v1, v2) behind one transformer running the experiment
   ``control = version 1, treatment = version 2``, 50/50.
3. Simulated users are the better model's test users (its gate set): a user asks for 10 items
   (``history`` = their training history, a fresh user id per run so each run is a new
   randomization), the client logs an ``impression``, and the user clicks each shown item that
   is one they really interacted with next (held-out), with probability ``--click-prob``. Every
   event goes through the transformer's events endpoint into the event log, with the answer's
   ``request_id`` and ``variant``.
4. Each run is analysed from the logged events (recsys/evaluation/ab.py): ``ab_runs`` A/B runs
   (power = share that pick the better arm), then A/A: both arms serve version 2 from two
   predictors, ``aa_runs`` runs (false-positive rate = share with a significant difference).

Writes ``<out>/ab-simulation.json`` (``ab_detected_better``, ``aa_runs``,
``aa_false_positive_rate``, ``power``, ``data``, ``checks``, per-run decisions, timings) and
``ab-simulation.md``. Exit 0 when the first A/B run picks the better version and the A/A
false-positive rate is at most 0.05; 1 (after writing the report) when not; 2 on a bad command
line (``--aa-runs`` below 20: fewer A/A runs cannot measure a 5% rate) or data directory.

Data: ``--data-dir``, else ``DATA_DIR`` from the environment (so ``make ab-simulate DATA_DIR=...``
works: make exports command-line variables), else a synthetic GroupLens-shaped set (``--synthetic``
forces it); the report's ``data`` says which.

    make ab-simulate [AB_SIM_ARGS="--users 300 --aa-runs 20"] [DATA_DIR=...]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_serving import REPO, start  # noqa: E402
from loop_demo import stop  # noqa: E402

SIM_SETTINGS = dict(embedding_dim=32, history_len=20, tt_epochs=4, tt_patience=2, tt_batch_size=256,
                    top_k_candidates=100, faiss_n_lists=8, faiss_n_probe=2, cooc_candidates=50, rank_candidates=120,
                    lgbm_n_estimators=60, lgbm_min_data_in_leaf=20, lgbm_early_stopping_rounds=15, torch_threads=2,
                    ials_factors=16, ials_iterations=10)
ID_STRIDE = 10_000_000  # run r's simulated users are (r + 1) * ID_STRIDE + i: a fresh randomization per run
MIN_AA_RUNS = 20  # the contract: a false-positive rate of at most 5% needs at least 20 A/A runs to be seen
MAX_AA_FALSE_POSITIVE_RATE = 0.05
SYNTHETIC_ITEMS = 400


class Client:
    """Keep-alive V2 client of the transformer."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, model: str, inputs: list[dict]) -> dict:
        self.conn.request("POST", f"/v2/models/{model}/infer", orjson.dumps({"id": "s", "inputs": inputs}),
                          {"content-type": "application/json"})
        resp = self.conn.getresponse()
        raw = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{model}: {resp.status} {raw[:300]!r}")
        return orjson.loads(raw)


def _int(name: str, v: int) -> dict:
    return {"name": name, "datatype": "INT64", "shape": [1], "data": [int(v)]}


def _str(name: str, v: str) -> dict:
    return {"name": name, "datatype": "BYTES", "shape": [1], "data": [v]}


def simulate_user(c: Client, uid: int, history: list[int], relevant: set[int], rng: np.random.Generator,
                  click_prob: float) -> None:
    out = c.post("recommender", [_int("user_id", uid), _int("k", 10),
                                 {"name": "history", "datatype": "INT64", "shape": [1, len(history)],
                                  "data": history}])
    items = next(o["data"] for o in out["outputs"] if o["name"] == "item_id")
    params = out.get("parameters", {})
    common = [_str("request_id", str(params["request_id"])), _str("variant", str(params["variant"])),
              _int("timestamp", int(time.time()))]
    c.post("events", [_int("user_id", uid), _int("item_id", items[0]), _str("event_type", "impression"),
                      _int("position", 0), *common])
    for pos, item in enumerate(items):
        if item in relevant and rng.random() < click_prob:
            c.post("events", [_int("user_id", uid), _int("item_id", item), _str("event_type", "click"),
                              _int("position", pos), *common])


def run_once(port: int, users: list, labels: dict, run: int, seed: int, click_prob: float, history_len: int) -> None:
    rng = np.random.default_rng([seed, run])
    c = Client(port)
    for i, s in enumerate(users):
        simulate_user(c, (run + 1) * ID_STRIDE + i, list(s.recent_items)[-history_len:] or [int(next(iter(
            labels[s.user_id])))], labels[s.user_id], rng, click_prob)


def analyse_run(log_path: Path, run: int, arms: list[str], resamples: int) -> dict:
    from recsys.evaluation.ab import analyze
    from recsys.online.archive import events_frame
    from recsys.online.event_log import SqliteEventLog

    ev = events_frame(list(SqliteEventLog(log_path).entries()))
    ev = ev[(ev["user_id"] >= (run + 1) * ID_STRIDE) & (ev["user_id"] < (run + 2) * ID_STRIDE)]
    rep = analyze(ev, arms, n_resamples=resamples, seed=run)
    cmp = next(iter(rep["comparisons"].values()))
    return {"run": run, "decision": cmp["decision"], "ctr": {a: r["ctr"] for a, r in rep["arms"].items()},
            "users": {a: r["users"] for a, r in rep["arms"].items()},
            "ctr_difference_ci95": cmp.get("ctr", {}).get("difference_ci95")}


def train_versions(work: Path, data, rng_seed: int) -> tuple[Path, Path, dict]:
    from recsys.artifacts.registry import log_and_register
    from recsys.config import get_settings
    from recsys.data.movielens import InteractionData
    from recsys.training.run import train_bundle

    s = get_settings().model_copy(update=SIM_SETTINGS)
    inter = data.interactions
    starved = InteractionData(inter.sample(frac=0.15, random_state=rng_seed).reset_index(drop=True), data.items,
                              data.users)
    worse, _ = train_bundle(starved, work / "worse", s, baselines=False, progress=False)
    better, rep = train_bundle(data, work / "better", s, baselines=False, progress=False)
    reg = {"worse": log_and_register(worse).to_dict(), "better": log_and_register(better).to_dict()}
    return worse, better, reg


def serve_arms(work: Path, env: dict, name: str, bundles: list[Path], models: list[str]) -> tuple[list, int]:
    procs, hosts = [], []
    try:
        for i, b in enumerate(bundles):
            p, port = start(["-m", "predictors.predictor", "--model_name", "recommender", "--model_dir", str(b),
                             "--trending", "off"], env, work / f"{name}-predictor-{i}.log")
            procs.append(p)
            hosts.append(f"127.0.0.1:{port}")
        exp = {"id": name, "arms": [{"name": arm, "model": m, "predictor_host": h, "share": 0.5}
                                    for arm, m, h in zip(("control", "treatment"), models, hosts)]}
        tr, port = start(["-m", "predictors.transformer", "--model_name", "recommender", "--model_dir",
                          str(bundles[-1]), "--predictor_host", hosts[0], "--predictor_protocol", "v2",
                          "--feature_source", "bundle", "--trending", "off"],
                         {**env, "AB_EXPERIMENT": json.dumps(exp)}, work / f"{name}-transformer.log")
    except BaseException:
        stop(procs)  # never leave a started predictor behind
        raise
    return [*procs, tr], port


def phase(work: Path, env: dict, name: str, bundles: list[Path], models: list[str], users: list, labels: dict,
          runs: range, a: argparse.Namespace) -> list[dict]:
    """``runs``: run numbers, unique across phases (they pick the simulated user ids: phases share the log)."""
    procs, port = serve_arms(work, env, name, bundles, models)
    out = []
    try:
        for r in runs:
            t = time.perf_counter()
            run_once(port, users, labels, r, a.seed, a.click_prob, SIM_SETTINGS["history_len"])
            res = analyse_run(Path(env["RUNS_DIR"]) / "events" / "log.db", r, ["control", "treatment"], a.resamples)
            res["seconds"] = round(time.perf_counter() - t, 2)
            out.append(res)
            print(f"{name} run {r - runs.start + 1}/{len(runs)}: {res['decision']} ctr {res['ctr']} "
                  f"({res['seconds']} s)", flush=True)
    finally:
        stop(procs)
    return out


def pick_data(data_dir: str | None, synthetic: bool, environ: dict) -> dict:
    """Where the interactions come from: ``{"source": "--data-dir" | "DATA_DIR", "path": ...}`` or
    ``{"source": "synthetic"}`` (written later, into the run's work directory)."""
    if synthetic:
        return {"source": "synthetic"}
    if data_dir:
        return {"source": "--data-dir", "path": str(Path(data_dir).expanduser().resolve())}
    if environ.get("DATA_DIR"):
        return {"source": "DATA_DIR", "path": str(Path(environ["DATA_DIR"]).expanduser().resolve())}
    return {"source": "synthetic"}


def checks(ab_detected_better: bool, aa_false_positive_rate: float) -> dict:
    """What the simulation has to show: the better arm picked, the A/A false-positive rate at most 5%."""
    ok = {"ab_detected_better": bool(ab_detected_better),
          "aa_false_positive_rate_ok": aa_false_positive_rate <= MAX_AA_FALSE_POSITIVE_RATE}
    return {**ok, "passed": all(ok.values()), "max_aa_false_positive_rate": MAX_AA_FALSE_POSITIVE_RATE,
            "min_aa_runs": MIN_AA_RUNS}


def finish(report: dict, out: Path) -> int:
    """Write the report (JSON and Markdown); the exit code: 0 if its checks passed, else 1."""
    ab, aa, fp = report["ab"], report["aa"], report["aa_false_positive_rate"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "ab-simulation.json").write_text(json.dumps(report, indent=2) + "\n")
    data = report["data"]
    where = data["source"] + (f" {data['path']}" if data.get("path") else "")
    (out / "ab-simulation.md").write_text(
        f"# A/B simulation\n\nProduced by `{report['command']}`; data: {where}.\n\n"
        f"- A/B (v1 worse vs v2 better, {report['users_per_run']} users a run): first run decision "
        f"**{ab[0]['decision']}**; power {report['power']:.2f} over {len(ab)} runs.\n"
        f"- A/A (v2 vs v2): false-positive rate {fp:.3f} over {len(aa)} runs "
        f"({sum(r['decision'] != 'no evidence yet' for r in aa)} significant).\n"
        f"- Checks: {'passed' if report['checks']['passed'] else 'FAILED'} ({report['checks']}).\n"
        f"- Seconds: {report['seconds']}.\n")
    print(f"ab_detected_better={report['ab_detected_better']} power={report['power']:.2f} "
          f"aa_false_positive_rate={fp:.3f} ({len(aa)} A/A runs); wrote {out / 'ab-simulation.json'}")
    if report["checks"]["passed"]:
        return 0
    reasons = []
    if not report["checks"]["ab_detected_better"]:
        reasons.append(f"the first A/B run decided {ab[0]['decision']!r}, not 'ship' (better arm not detected)")
    if not report["checks"]["aa_false_positive_rate_ok"]:
        reasons.append(f"A/A false-positive rate {fp:.3f} > {MAX_AA_FALSE_POSITIVE_RATE}")
    print(f"ab-simulate: failed: {'; '.join(reasons)} (see {out / 'ab-simulation.json'})", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None,
                    help="GroupLens directory or interaction log (default: DATA_DIR if set, else synthetic)")
    ap.add_argument("--synthetic", action="store_true", help="synthetic data even when DATA_DIR is set")
    ap.add_argument("--users", type=int, default=300, help="simulated users per run (test users of the data)")
    ap.add_argument("--ab-runs", type=int, default=5)
    ap.add_argument("--aa-runs", type=int, default=MIN_AA_RUNS, help=f"A/A runs, at least {MIN_AA_RUNS}")
    ap.add_argument("--click-prob", type=float, default=0.8)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="reports")
    a = ap.parse_args(argv)
    if a.ab_runs < 1:
        ap.error(f"--ab-runs {a.ab_runs}: at least 1 A/B run is needed")
    if a.aa_runs < MIN_AA_RUNS:
        ap.error(f"--aa-runs {a.aa_runs}: at least {MIN_AA_RUNS} A/A runs are needed to measure a false-positive "
                 f"rate of at most {MAX_AA_FALSE_POSITIVE_RATE}; set --aa-runs {MIN_AA_RUNS} or more")
    if a.data_dir and a.synthetic:
        ap.error("--data-dir and --synthetic: give one")
    data = pick_data(a.data_dir, a.synthetic, os.environ)
    if data.get("path") and not Path(data["path"]).is_dir():
        ap.error(f"{data['source']} {data['path']}: no such directory; set --data-dir (or DATA_DIR) to a GroupLens "
                 "directory or interaction log, or unset it for synthetic data")
    t0 = time.perf_counter()
    work = REPO / "runs" / "ab-sim" / uuid.uuid4().hex[:8]
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", TQDM_DISABLE="1", RUNS_DIR=str(work / "runs"),
               MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow.db'}", FEAST_PROJECT=f"absim_{uuid.uuid4().hex[:6]}")
    env.pop("REDIS_URL", None)
    env.pop("AB_EXPERIMENT", None)
    os.environ.update({k: env[k] for k in ("RUNS_DIR", "MLFLOW_TRACKING_URI", "FEAST_PROJECT")})
    os.environ.pop("REDIS_URL", None)
    from recsys.data.interactions import load_data
    from recsys.data.synthetic import write_synthetic
    from recsys.evaluation.gate import read_gate_set

    if data["source"] == "synthetic":
        n_users = max(300, a.users + 50)
        data.update(path=str(write_synthetic(work / "data", n_users=n_users, n_items=SYNTHETIC_ITEMS, seed=a.seed)),
                    n_users=n_users, n_items=SYNTHETIC_ITEMS, seed=a.seed)
    worse, better, registered = train_versions(work, load_data(data["path"]), a.seed)
    trained_s = time.perf_counter() - t0
    states, labels = read_gate_set(better)
    users = [states[i] for i in np.random.default_rng(a.seed).permutation(len(states))[: a.users]]
    ab = phase(work, env, "ab-sim", [worse, better], ["1", "2"], users, labels, range(a.ab_runs), a)
    aa = phase(work, env, "aa-sim", [better, better], ["2", "2"], users, labels,
               range(a.ab_runs, a.ab_runs + a.aa_runs), a)
    power = float(np.mean([r["decision"] == "ship" for r in ab]))
    fp = float(np.mean([r["decision"] != "no evidence yet" for r in aa]))
    detected = ab[0]["decision"] == "ship"
    report = {
        "ab_detected_better": detected, "power": power, "ab_runs": len(ab),
        "aa_runs": len(aa), "aa_false_positive_rate": fp, "checks": checks(detected, fp), "data": data,
        "users_per_run": len(users), "click_prob": a.click_prob,
        "registered": registered, "ab": ab, "aa": aa,
        "seconds": {"train_and_register": round(trained_s, 1), "total": round(time.perf_counter() - t0, 1)},
        "command": "python scripts/ab_simulate.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    return finish(report, Path(a.out))


if __name__ == "__main__":
    sys.exit(main())
