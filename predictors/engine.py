"""In-process recommendation engine around one loaded bundle (used by the predictor, and by the
transformer in collocated mode), and what the transformer reads of a bundle without its models
(:class:`BundleMeta`).

Plain Python: no KServe here, so tests and the benchmark can call it directly.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from predictors.protocol import RecRequest, RecResult, json_param
from recsys.artifacts.bundle import Bundle, load_bundle, read_manifest
from recsys.features.catalog import Catalog
from recsys.features.users import UserState
from recsys.models.baselines import Popularity
from recsys.models.ranker_features import FEATURES

log = logging.getLogger(__name__)
PROBE_USERS = 32


def session_state(
    base: UserState | None, user_id: int, history: list[int] | None, history_len: int
) -> UserState | None:
    """The user's state with a session's recent items on top (session cold start).

    Unknown user + history: a fresh state from the history alone; known user + history: the
    history appended to the recent items (seen items too, so they are not recommended back).
    """
    if not history:
        return base
    if base is None:
        return UserState(user_id=user_id, recent_items=list(history)[-history_len:], seen_items=list(history))
    recent = (list(base.recent_items) + list(history))[-history_len:]
    seen = list(dict.fromkeys(list(base.seen_items) + list(history)))
    return UserState(**{**base.__dict__, "recent_items": recent, "seen_items": seen})


def item_titles(items: pd.DataFrame) -> dict[int, tuple[str, str]]:
    """Item id -> (title, genres), what responses carry beside the ids."""
    return {int(i): (str(t), str(g)) for i, t, g in zip(items["item_id"], items["title"], items["genres"])}


class BundleMeta:
    """What the transformer needs from a model version without loading its models: titles and
    genres, the popularity fallback, and which users and items the version knows."""

    def __init__(self, bundle_dir: str | Path):
        self.path = Path(bundle_dir)
        self.manifest = read_manifest(self.path)
        items = pd.read_parquet(self.path / "items.parquet")
        self.titles = item_titles(items)
        self.popularity = Popularity().fit(None, Catalog(items, ref_ts=self.manifest["ref_ts"]))
        self.known_items = frozenset(int(i) for i in items["item_id"])
        users = pd.read_parquet(self.path / "users.parquet", columns=["user_id", "last_ts"])
        # Each known user's latest interaction in the version: an online row older than that is behind.
        self.user_last_ts = dict(zip(users["user_id"].astype(int).tolist(), users["last_ts"].astype(int).tolist()))
        self.known_users = frozenset(self.user_last_ts)

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def behind(self, user_id: int, row: dict) -> bool:
        """An online row that lacks interactions the version has for this user."""
        return int(row.get("last_ts") or 0) < self.user_last_ts.get(user_id, 0)


class Engine:
    """Bundle + user table in memory; turns a :class:`RecRequest` into a :class:`RecResult`."""

    def __init__(self, bundle: Bundle, mmr_lambda: float = 1.0):
        self.bundle = bundle
        self.rec = bundle.recommender
        self.version = bundle.version
        self.states = bundle.user_states()
        self.history_len = self.rec.two_tower.history_len  # what this version's user tower reads
        self.titles = item_titles(bundle.catalog.table)
        self.popularity = Popularity().fit(None, bundle.catalog)
        self.mmr_lambda = mmr_lambda

    # How the models run (read off the models, see optimize).
    @property
    def ranker_backend(self) -> str:
        return self.rec.ranker.backend if self.rec.ranker is not None else "none"

    @property
    def user_tower_backend(self) -> str:
        return self.rec.two_tower.backend

    @property
    def user_vector_memo(self) -> int:
        return self.rec.two_tower.memo_size

    @classmethod
    def from_dir(cls, path: str | Path, ranker_threads: int = 1, mmr_lambda: float = 1.0, verify: bool = True,
                 ranker_backend: str | None = None, compile_dir: str | Path | None = None, optimize: bool = True,
                 memo_capacity: int | None = None) -> Engine:
        """``ranker_backend``/``compile_dir``/``memo_capacity``: default RANKER_BACKEND /
        RANKER_COMPILE_DIR / USER_VECTOR_MEMO; ``optimize``: the speed-ups of :meth:`optimize`."""
        from recsys.config import get_settings

        s = get_settings()
        eng = cls(load_bundle(path, ranker_threads=ranker_threads, verify=verify), mmr_lambda)
        if optimize:
            eng.optimize(
                (ranker_backend or s.ranker_backend) == "compiled",
                compile_dir or s.compile_dir(),
                ranker_threads,
                s.user_vector_memo if memo_capacity is None else memo_capacity,
            )
        return eng

    def optimize(self, compile_ranker: bool, cache_dir: str | Path, nthread: int = 1, memo_capacity: int = 0) -> None:
        """Serving speed-ups that keep the answers: the user tower as a TorchScript trace and the
        ranker as compiled trees, each checked against the eager/LightGBM model on real users
        at load time (the ranker also on rows with the no-history features missing; any failure
        keeps the plain model and says why in the log), and a memo of user vectors keyed by the
        tower's exact inputs, filled with the bundle's users (``memo_capacity`` 0 = off)."""
        users = list(self.states.values())
        states = users[:PROBE_USERS]
        try:
            self.rec.two_tower.trace_user_tower(states)
        except Exception as exc:  # noqa: BLE001 - tracing is an optimisation, never a reason not to serve
            log.warning("user tower: TorchScript trace unavailable (%s); serving the eager module", exc)
        if memo_capacity:
            t = time.perf_counter()
            n = self.rec.two_tower.enable_memo(users, memo_capacity)
            log.info("user tower: %d user vectors precomputed (%.1f s)", n, time.perf_counter() - t)
        ranker = self.rec.ranker
        if not compile_ranker or ranker is None:
            return
        try:
            cands, recents = self.rec.retrieve(states) if states else ([], [])
            feats = self.rec.features(states, cands, recents)
            probe = np.vstack(feats) if feats else np.zeros((0, len(FEATURES)), np.float32)
            missing = probe[:64].copy()
            missing[:, [FEATURES.index("year_delta_last1"), FEATURES.index("id_delta_last1")]] = np.nan
            t = time.perf_counter()
            ranker.use_compiled(cache_dir, np.vstack([probe, missing]), nthread)
            log.info(
                "ranker: compiled trees %s, checked on %d rows (%.1f s)",
                ranker.compiled.lib,
                len(probe) + len(missing),
                time.perf_counter() - t,
            )
        except Exception as exc:  # noqa: BLE001 - no compiler, unsupported model...: LightGBM still serves
            log.warning("ranker: compiled trees unavailable (%s); serving with LightGBM's predict", exc)

    def warmup(self, n: int = 5) -> None:
        """A few requests at load time (first-call costs of torch/FAISS/LightGBM off the hot path)."""
        users = list(self.states)[:n] or [0]
        for u in users:
            self.recommend(RecRequest(user_ids=[u], k=10))

    def info(self) -> dict:
        """Model-info output: version, index stats, top-10 ranker features by gain."""
        ranker = self.rec.ranker
        return {
            "model_version": self.version,
            "index": self.bundle.manifest.get("index", {}),
            "top_features_gain": [[n, float(v)] for n, v in (ranker.top_features(10) if ranker else [])],
            "n_items": len(self.bundle.catalog), "n_users": len(self.states),
            "serving": {**self.bundle.manifest.get("serving", {}), "ranker_backend": self.ranker_backend,
                        "user_tower_backend": self.user_tower_backend, "user_vector_memo": self.user_vector_memo},
            "metrics": self.bundle.manifest.get("metrics", {}),
        }

    def state_for(self, user_id: int, row: dict | None, history: list[int] | None) -> UserState | None:
        base = UserState.from_row(row) if row is not None else self.states.get(int(user_id))
        return session_state(base, int(user_id), history, self.history_len)

    def recommend(self, req: RecRequest) -> RecResult:
        """Two-stage recommendations per user; users with no state at all get popularity."""
        t0 = time.perf_counter()
        states, cold = [], []
        for j, uid in enumerate(req.user_ids):
            row = req.features[j] if req.features is not None else None
            st = self.state_for(uid, row, req.history)
            (cold if st is None else states).append((j, st))
        n = len(req.user_ids)
        ids: list = [None] * n
        sc: list = [None] * n
        rs: list = [None] * n
        timings = {"retrieval": 0.0, "ranking": 0.0, "rerank": 0.0}
        n_cand = 0
        if states:
            recs = self.rec.recommend([s for _, s in states], req.k, self.mmr_lambda)
            timings = dict(recs[0].timings_ms)
            for (j, _), r in zip(states, recs):
                ids[j], sc[j], rs[j] = r.item_ids.tolist(), r.scores.tolist(), np.asarray(r.retrieval_scores).tolist()
                n_cand = max(n_cand, r.n_candidates)
        for j, _ in cold:
            ids[j], sc[j] = self.popularity.top(req.k, req.history)
            rs[j] = [0.0] * len(ids[j])
        timings["predict"] = (time.perf_counter() - t0) * 1e3
        params = {
            "model_version": self.version,
            "n_candidates": int(n_cand),
            "latency_ms": json_param({k: round(v, 3) for k, v in timings.items()}),
        }
        if cold:
            params["fallback"] = "cold_start"
            params["cold_start_users"] = ",".join(str(req.user_ids[j]) for j, _ in cold)
        return RecResult(ids, sc, rs, params, timings)
