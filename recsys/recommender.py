"""The two-stage recommender: user tower -> FAISS -> merge channels -> ranker -> MMR -> top-k.

One object serves both offline evaluation (batches of users) and the KServe predictor (one
user per request), so the numbers in the report are what the server returns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import faiss
import numpy as np

from recsys.catalog import Catalog
from recsys.features import UserState
from recsys.ranking import Candidates, Ranker, candidate_features
from recsys.retrieval.cooc import NextItemCooc
from recsys.retrieval.two_tower import TwoTower

RRF_K = 60.0


@dataclass
class Recommendation:
    item_ids: np.ndarray  # movie ids, best first
    scores: np.ndarray  # final score (ranker, or retrieval when no ranker)
    retrieval_scores: np.ndarray  # two-tower inner product
    n_candidates: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)


class TwoStageRecommender:
    """Candidate generation from the two-tower (FAISS) and next-item co-occurrence channels,
    ranked by LightGBM LambdaMART when a ranker is given."""

    def __init__(
        self,
        catalog: Catalog,
        two_tower: TwoTower,
        index: faiss.Index,
        cooc: NextItemCooc | None,
        ranker: Ranker | None = None,
        top_k_candidates: int = 500,
        cooc_candidates: int = 200,
        popular_candidates: int = 0,
        rank_candidates: int = 300,
        ranker_threads: int = 0,
    ):
        self.catalog = catalog
        self.two_tower = two_tower
        self.index = index
        self.cooc = cooc
        self.ranker = ranker
        self.top_k_candidates = top_k_candidates
        self.cooc_candidates = cooc_candidates if cooc is not None else 0
        self.popular_candidates = popular_candidates
        self.rank_candidates = rank_candidates
        self.ranker_threads = ranker_threads
        self.item_emb = two_tower.item_embeddings()

    # ---- stage 1 -------------------------------------------------------------------------
    def retrieve(self, states: list[UserState], user_vecs: np.ndarray | None = None) -> tuple[list[Candidates], list[np.ndarray]]:
        """Merged candidates per user (seen items removed) and each user's recent item indices.

        ``user_vecs``: the states' user-tower vectors when the caller already has them.
        """
        n_items = len(self.catalog)
        if user_vecs is None:
            user_vecs = self.two_tower.embed_users(states)
        max_seen = max((len(s.seen_items) for s in states), default=0)
        k_search = min(n_items, self.top_k_candidates + max_seen)
        _, ann = self.index.search(user_vecs, k_search)
        out, recents = [], []
        K, C = self.top_k_candidates, self.cooc_candidates
        for row, s in enumerate(states):
            seen = self.catalog.indices(s.seen_items)
            recent = self.catalog.indices(s.recent_items)
            recents.append(recent)
            seen_mask = np.zeros(n_items, bool)
            seen_mask[seen] = True
            tt = ann[row][ann[row] >= 0]
            tt = tt[~seen_mask[tt]][:K]
            member = np.zeros(n_items, bool)  # union of the channels; flatnonzero = sorted unique
            member[tt] = True
            cooc_vec = top = None
            if C:
                cooc_vec, last1_vec = self.cooc.user_vectors(recent)
                masked = np.where(seen_mask, -1.0, cooc_vec)
                m = min(C, n_items - 1)
                top = np.argpartition(-masked, m)[:m] if n_items > m else np.arange(n_items)
                top = top[masked[top] > 0]
                top = top[np.argsort(-masked[top], kind="stable")]
                member[top] = True
            if self.popular_candidates:
                pop = self.catalog.popular_order
                member[pop[~seen_mask[pop]][: self.popular_candidates]] = True
            idx = np.flatnonzero(member)
            tt_rank_all = np.full(n_items, float(K), np.float32)
            tt_rank_all[tt] = np.arange(tt.size)
            tt_rank = tt_rank_all[idx]
            tt_score = self.item_emb[idx] @ user_vecs[row]
            if cooc_vec is not None:
                c_rank = np.full(n_items, float(C), np.float32)
                c_rank[top] = np.arange(top.size)
                cooc_score, cooc_rank = cooc_vec[idx], c_rank[idx]
                last1 = last1_vec[idx] if recent.size else np.zeros(idx.size, np.float32)
                prerank = 1.0 / (RRF_K + tt_rank) + 1.0 / (RRF_K + cooc_rank)
            else:
                cooc_score = last1 = np.zeros(idx.size, np.float32)
                cooc_rank = np.full(idx.size, float(C), np.float32)
                prerank = 1.0 / (RRF_K + tt_rank)
            keep = np.argsort(-prerank, kind="stable")[: self.rank_candidates]
            out.append(Candidates(idx[keep], tt_score[keep], tt_rank[keep], cooc_score[keep], cooc_rank[keep], last1[keep], prerank[keep].astype(np.float32)))
        return out, recents

    # ---- stage 2 -------------------------------------------------------------------------
    def features(self, states: list[UserState], cands: list[Candidates], recents: list[np.ndarray]) -> list[np.ndarray]:
        return [candidate_features(s, r, c, self.catalog, self.item_emb) for s, c, r in zip(states, cands, recents)]

    def recommend_batch(self, states: list[UserState], k: int = 10, mmr_lambda: float = 1.0, use_ranker: bool = True) -> list[Recommendation]:
        """Top-``k`` per user, best first, seen items excluded."""
        t0 = time.perf_counter()
        cands, recents = self.retrieve(states)
        t1 = time.perf_counter()
        if self.ranker is not None and use_ranker:
            feats = self.features(states, cands, recents)
            sizes = [f.shape[0] for f in feats]
            scores = np.split(self.ranker.predict(np.vstack(feats) if feats else np.zeros((0, 1)), self.ranker_threads), np.cumsum(sizes)[:-1])
        else:
            scores = [c.tt_score.astype(np.float64) for c in cands]
        t2 = time.perf_counter()
        out = []
        for c, sc in zip(cands, scores):
            order = np.argsort(-sc, kind="stable") if mmr_lambda >= 1.0 else self._mmr(c.idx, sc, k, mmr_lambda)
            order = order[:k]
            out.append(Recommendation(
                item_ids=self.catalog.item_ids[c.idx[order]], scores=sc[order].astype(np.float32),
                retrieval_scores=c.tt_score[order].astype(np.float32), n_candidates=int(c.idx.size),
            ))
        t3 = time.perf_counter()
        timings = {"retrieval": (t1 - t0) * 1e3, "ranking": (t2 - t1) * 1e3, "rerank": (t3 - t2) * 1e3}
        for r in out:
            r.timings_ms = timings
        return out

    def recommend(self, state: UserState, k: int = 10, mmr_lambda: float = 1.0, use_ranker: bool = True) -> Recommendation:
        return self.recommend_batch([state], k, mmr_lambda, use_ranker)[0]

    def _mmr(self, idx: np.ndarray, scores: np.ndarray, k: int, lam: float) -> np.ndarray:
        """Maximal marginal relevance: argmax lam * rel - (1 - lam) * max cosine to chosen items."""
        rel = (scores - scores.min()) / (np.ptp(scores) or 1.0)
        emb = self.item_emb[idx]
        chosen: list[int] = []
        max_sim = np.full(idx.size, -np.inf)
        available = np.ones(idx.size, bool)
        for _ in range(min(k, idx.size)):
            penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
            val = np.where(available, lam * rel - (1 - lam) * penalty, -np.inf)
            j = int(np.argmax(val))
            chosen.append(j)
            available[j] = False
            max_sim = np.maximum(max_sim, emb @ emb[j])
        rest = np.flatnonzero(available)
        return np.r_[np.array(chosen, np.int64), rest[np.argsort(-scores[rest], kind="stable")]]
