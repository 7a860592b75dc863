"""The quality benchmark end to end on irregular synthetic data: every protocol, SASRec in the
same run, intervals, the comparison with the best baseline, the ablations (those that retrain on
the first protocol), the markdown."""

from __future__ import annotations

import json

import pytest

from recsys.constants import PRIMARY_MODEL

from testkit import FAST_ENV

pytestmark = pytest.mark.slow


def test_benchmark_writes_every_protocol_with_sasrec_intervals_and_ablations(tmp_path, monkeypatch):
    from recsys.config import get_settings
    from recsys.data.splits import PROTOCOLS
    from recsys.data.synthetic import write_synthetic
    from recsys.evaluation.benchmark import main

    for k, v in FAST_ENV.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    data = write_synthetic(tmp_path / "data", 300, 400, irregular=True, seed=2)
    assert main(["--data-dir", str(data), "--out", str(tmp_path / "r"), "--no-progress",
                 "--retrain-ablations", PROTOCOLS[0]]) == 0
    for protocol in PROTOCOLS:
        rep = json.loads((tmp_path / "r" / f"quality-{protocol}.json").read_text())
        models = rep["models"]
        assert {"popularity", "ease", "ials", "sasrec", PRIMARY_MODEL} <= set(models)
        for m in models.values():
            lo, hi = m["ndcg@10_ci95"]
            assert lo <= m["ndcg@10"] <= hi
        vs = rep["versus_best_baseline"]
        assert vs["best_baseline"] in models and "sasrec" in vs
        d = vs[vs["best_baseline"]]
        assert d["ndcg@10_diff_ci95"][0] <= d["ndcg@10_diff"] <= d["ndcg@10_diff_ci95"][1]
        assert set(rep["ablations"]["mmr"]) == {"1.0", "0.9", "0.7", "0.5"}
        assert sum(b["users"] for b in rep["ablations"]["cold_warm"].values()) == models["sasrec"]["users"]
        assert rep["sasrec"]["best_epoch"] >= 1
        assert rep["funnel"]["ranked_top10_recall@10"] == models[PRIMARY_MODEL]["recall@10"]
        retrained = {k for k in rep["ablations"] if k == "no_cooc" or k.startswith("history_len_")}
        if protocol != PROTOCOLS[0]:  # the ablations that retrain run where asked only
            assert not retrained
            continue
        ab = rep["ablations"]
        assert retrained == {"no_cooc", "history_len_10", "history_len_20", "history_len_50", "history_len_200"}
        assert ab["history_len_20"]["main_run"] and ab["history_len_20"]["ndcg@10"] == models[PRIMARY_MODEL]["ndcg@10"]
        # without the channel: the main run's towers (the same two-tower lists), candidates from them alone
        assert ab["no_cooc"]["two_tower_ndcg@10"] == models["two_tower"]["ndcg@10"]
        assert ab["no_cooc"]["merged_candidates_recall"] <= rep["funnel"]["retrieval_recall@100"]
        for key in ("no_cooc", "history_len_10", "history_len_50", "history_len_200"):
            d, (lo, hi) = ab[key]["ndcg@10_diff_vs_main"], ab[key]["ndcg@10_diff_ci95"]
            assert lo <= d <= hi
            assert abs(d - (ab[key]["ndcg@10"] - models[PRIMARY_MODEL]["ndcg@10"])) < 1e-9
        assert ab["history_len_10"]["two_tower_best_epoch"] >= 1
    md = (tmp_path / "r" / "quality.md").read_text()
    assert "`global-temporal`" in md and "MMR lambda" in md and "sasrec" in md
    assert "without the co-occurrence channel" in md and "history len 200" in md
    assert "RETRAIN_ABLATIONS=user-temporal" in md  # the command that made the report
