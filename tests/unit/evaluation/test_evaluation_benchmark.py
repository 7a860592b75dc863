"""The quality benchmark end to end on irregular synthetic data: every protocol, SASRec in the
same run, intervals, the comparison with the best baseline, the ablations, the markdown."""

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
    assert main(["--data-dir", str(data), "--out", str(tmp_path / "r"), "--no-progress"]) == 0
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
    md = (tmp_path / "r" / "quality.md").read_text()
    assert "`global-temporal`" in md and "MMR lambda" in md and "sasrec" in md
