"""The predictor's load-time speed-ups (TorchScript user tower, compiled ranker trees) keep its
answers, are cached, and fall back to the plain models when they cannot be used."""

from __future__ import annotations

import numpy as np
import pytest

from predictors.engine import Engine
from predictors.protocol import RecRequest
from recsys.models.ranker import CompiledTrees, Ranker


@pytest.fixture(scope="module")
def plain(bundle_dir):
    return Engine.from_dir(bundle_dir, optimize=False)


@pytest.fixture(scope="module")
def compile_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("compiled")


def requests(engine: Engine) -> list[RecRequest]:
    users = sorted(engine.states)[:40]
    reqs = [RecRequest(user_ids=[u], k=20) for u in users]
    reqs.append(RecRequest(user_ids=users[:8], k=10))  # a batch
    reqs.append(
        RecRequest(user_ids=[10**9], k=10, history=[int(i) for i in engine.bundle.catalog.item_ids[:5]])
    )  # session only
    return reqs


def assert_same_answers(a: Engine, b: Engine) -> None:
    for req in requests(a):
        ra, rb = a.recommend(req), b.recommend(req)
        assert ra.item_ids == rb.item_ids, req.user_ids
        np.testing.assert_allclose(np.array(ra.scores, float), np.array(rb.scores, float), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(
            np.array(ra.retrieval_scores, float), np.array(rb.retrieval_scores, float), rtol=1e-5, atol=1e-6
        )


def test_optimized_engine_answers_like_the_plain_models(bundle_dir, plain, compile_dir):
    fast = Engine.from_dir(bundle_dir, ranker_backend="compiled", compile_dir=compile_dir)
    assert (fast.ranker_backend, fast.user_tower_backend) == ("compiled", "torchscript")
    assert (plain.ranker_backend, plain.user_tower_backend) == ("lightgbm", "eager")
    assert fast.info()["serving"]["ranker_backend"] == "compiled" and fast.info()["serving"]["user_vector_memo"] == len(
        fast.states
    )
    assert_same_answers(plain, fast)


def test_compiled_ranker_is_cached_by_model(bundle_dir, compile_dir):
    a = Engine.from_dir(bundle_dir, ranker_backend="compiled", compile_dir=compile_dir)
    lib = a.rec.ranker.compiled.lib
    mtime = lib.stat().st_mtime_ns
    b = Engine.from_dir(bundle_dir, ranker_backend="compiled", compile_dir=compile_dir)
    assert b.rec.ranker.compiled.lib == lib and lib.stat().st_mtime_ns == mtime  # reused, not rebuilt
    assert [p.name for p in compile_dir.iterdir()] == [lib.name]  # no temporary files left behind


def test_no_compiler_falls_back_to_lightgbm(bundle_dir, plain, tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise FileNotFoundError("gcc: not found")

    monkeypatch.setattr(CompiledTrees, "build", classmethod(lambda cls, *a, **k: broken()))
    eng = Engine.from_dir(bundle_dir, ranker_backend="compiled", compile_dir=tmp_path)
    assert eng.ranker_backend == "lightgbm" and eng.rec.ranker.compiled is None
    assert "gcc: not found" in caplog.text
    assert_same_answers(plain, eng)


def test_compiled_trees_that_disagree_are_refused(bundle_dir, plain, tmp_path, monkeypatch):
    ranker: Ranker = Engine.from_dir(bundle_dir, optimize=False).rec.ranker
    states = list(plain.states.values())[:5]
    cands, recents = plain.rec.retrieve(states)
    probe = np.vstack(plain.rec.features(states, cands, recents))
    real = CompiledTrees.predict
    monkeypatch.setattr(CompiledTrees, "predict", lambda self, x: real(self, x) + 1e-3)
    with pytest.raises(RuntimeError, match="disagrees with LightGBM"):
        ranker.use_compiled(tmp_path, probe)
    assert ranker.compiled is None and ranker.backend == "lightgbm"


def test_ranker_backend_lightgbm_is_honoured(bundle_dir, compile_dir):
    eng = Engine.from_dir(bundle_dir, ranker_backend="lightgbm", compile_dir=compile_dir)
    assert eng.ranker_backend == "lightgbm" and eng.user_tower_backend == "torchscript"


def test_user_tower_trace_is_checked(plain):
    tt = Engine.from_dir(plain.bundle.path, optimize=False).rec.two_tower
    with pytest.raises(RuntimeError, match="traced user tower disagrees"):
        tt.trace_user_tower(list(plain.states.values())[:3], atol=-1.0)  # nothing can pass a negative tolerance
    assert tt._traced is None


def test_user_vector_memo_is_keyed_by_the_towers_inputs(bundle_dir, plain):
    from dataclasses import replace

    eng = Engine.from_dir(bundle_dir, optimize=False)
    tt = eng.rec.two_tower
    states = [plain.states[u] for u in sorted(plain.states)[:6]]
    want = plain.rec.two_tower.embed_users(states)  # no memo: the tower itself
    assert tt.enable_memo(states[:4], capacity=5) == 4
    hits = tt.memo_hits
    np.testing.assert_allclose(tt.embed_users(states[:4]), want[:4], rtol=1e-5, atol=1e-6)
    assert tt.memo_hits == hits + 4
    # Same user, one more item in the history: a miss, embedded by the tower, then remembered.
    moved = replace(states[0], recent_items=list(states[0].recent_items) + [int(eng.bundle.catalog.item_ids[0])])
    misses = tt.memo_misses
    np.testing.assert_allclose(tt.embed_users([moved]), plain.rec.two_tower.embed_users([moved]), rtol=1e-5, atol=1e-6)
    assert tt.memo_misses == misses + 1 and tt.embed_users([moved]) is not None and tt.memo_hits == hits + 5
    np.testing.assert_allclose(
        tt.embed_users(states[4:]), want[4:], rtol=1e-5, atol=1e-6
    )  # more misses: capacity 5 holds
    assert len(tt._memo) == 5
