"""The two-stage recommender: user tower -> FAISS -> merge channels -> ranker -> MMR -> top-k.

One object serves both offline evaluation (batches of users) and the KServe predictor (one
user per request), so the numbers in the report are what the server returns.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from recsys.constants import PRIMARY_MODEL
from recsys.features.catalog import Catalog
from recsys.features.trending import NoTrending, Trending
from recsys.features.users import UserState
from recsys.models.base import Recommendation
from recsys.models.cooc import NextItemCooc
from recsys.models.ranker import Ranker
from recsys.models.ranker_features import Candidates, candidate_features
from recsys.models.two_tower import TwoTower

if TYPE_CHECKING:
    from recsys.config import Settings

RRF_K = 60.0


@dataclass(frozen=True)
class RecommenderConfig:
    """How many candidates each stage passes on (recorded in the bundle's manifest, ``serving``)."""

    top_k_candidates: int = 500  # two-tower candidates from FAISS
    cooc_candidates: int = 200  # co-occurrence candidates (0 = channel off)
    popular_candidates: int = 0  # popularity candidates
    rank_candidates: int = 300  # merged candidates the ranker scores
    ranker_threads: int = 0  # LightGBM threads per predict call (0 = its default); not saved

    @classmethod
    def from_settings(cls, settings: Settings, ranker_threads: int | None = None) -> RecommenderConfig:
        return cls(settings.top_k_candidates, settings.cooc_candidates, settings.popular_candidates,
                   settings.rank_candidates, settings.lgbm_num_threads if ranker_threads is None else ranker_threads)

    @classmethod
    def from_manifest(cls, serving: dict[str, Any], ranker_threads: int = 0) -> RecommenderConfig:
        return cls(serving["top_k_candidates"], serving["cooc_candidates"], serving["popular_candidates"],
                   serving["rank_candidates"], ranker_threads)

    def manifest(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k != "ranker_threads"}


class TwoStageRecommender:
    """Candidate generation from the two-tower (FAISS) and next-item co-occurrence channels,
    ranked by LightGBM LambdaMART when a ranker is given."""

    name = PRIMARY_MODEL

    def __init__(self, catalog: Catalog, two_tower: TwoTower, index: faiss.Index, cooc: NextItemCooc | None,
                 ranker: Ranker | None = None, config: RecommenderConfig | None = None):
        config = config or RecommenderConfig()
        if cooc is None:
            config = replace(config, cooc_candidates=0)
        self.catalog = catalog
        self.two_tower = two_tower
        self.index = index
        self.cooc = cooc
        self.ranker = ranker
        self.config = config
        self.item_emb = two_tower.item_embeddings()
        self.trending: Trending = NoTrending()  # training: point in time; serving: the stream's counts

    @property
    def top_k_candidates(self) -> int:
        return self.config.top_k_candidates

    @property
    def cooc_candidates(self) -> int:
        return self.config.cooc_candidates

    @property
    def rank_candidates(self) -> int:
        return self.config.rank_candidates

    # ---- stage 1 -------------------------------------------------------------------------
    def retrieve(self, states: list[UserState],
                 user_vecs: np.ndarray | None = None) -> tuple[list[Candidates], list[np.ndarray]]:
        """Merged candidates per user (seen items removed) and each user's recent item indices.

        ``user_vecs``: the states' user-tower vectors when the caller already has them.
        """
        if user_vecs is None:
            user_vecs = self.two_tower.embed_users(states)
        max_seen = max((len(s.seen_items) for s in states), default=0)
        _, ann = self.index.search(user_vecs, min(len(self.catalog), self.top_k_candidates + max_seen))
        out, recents = [], []
        for row, s in enumerate(states):
            recent = self.catalog.indices(s.recent_items)
            recents.append(recent)
            out.append(self._merge_channels(s, recent, ann[row], user_vecs[row]))
        return out, recents

    def _cooc_top(self, recent: np.ndarray, seen_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The co-occurrence channel: (scores over the catalog, latest item's row, its candidates best first)."""
        assert self.cooc is not None, "the co-occurrence channel is off"
        cooc_vec, last1_vec = self.cooc.user_vectors(recent)
        masked = np.where(seen_mask, -1.0, cooc_vec)
        n_items = len(self.catalog)
        m = min(self.cooc_candidates, n_items - 1)
        top = np.argpartition(-masked, m)[:m] if n_items > m else np.arange(n_items)
        top = top[masked[top] > 0]
        return cooc_vec, last1_vec, top[np.argsort(-masked[top], kind="stable")]

    def _merge_channels(self, state: UserState, recent: np.ndarray, ann_row: np.ndarray,
                        user_vec: np.ndarray) -> Candidates:
        """One user's candidates: the union of the channels, pre-ranked by reciprocal-rank fusion
        and cut to ``rank_candidates``."""
        n_items, n_tt, n_cooc = len(self.catalog), self.top_k_candidates, self.cooc_candidates
        seen_mask = np.zeros(n_items, bool)
        seen_mask[self.catalog.indices(state.seen_items)] = True
        tt = ann_row[ann_row >= 0]
        tt = tt[~seen_mask[tt]][:n_tt]
        member = np.zeros(n_items, bool)  # union of the channels; flatnonzero = sorted unique
        member[tt] = True
        cooc = self._cooc_top(recent, seen_mask) if n_cooc else None
        if cooc is not None:
            member[cooc[2]] = True
        if self.config.popular_candidates:
            pop = self.catalog.popular_order
            member[pop[~seen_mask[pop]][: self.config.popular_candidates]] = True
        idx = np.flatnonzero(member)
        tt_rank_all = np.full(n_items, float(n_tt), np.float32)
        tt_rank_all[tt] = np.arange(tt.size)
        tt_rank = tt_rank_all[idx]
        tt_score = self.item_emb[idx] @ user_vec
        if cooc is not None:
            cooc_vec, last1_vec, top = cooc
            c_rank = np.full(n_items, float(n_cooc), np.float32)
            c_rank[top] = np.arange(top.size)
            cooc_score, cooc_rank = cooc_vec[idx], c_rank[idx]
            last1 = last1_vec[idx] if recent.size else np.zeros(idx.size, np.float32)
            prerank = 1.0 / (RRF_K + tt_rank) + 1.0 / (RRF_K + cooc_rank)
        else:
            cooc_score = last1 = np.zeros(idx.size, np.float32)
            cooc_rank = np.full(idx.size, float(n_cooc), np.float32)
            prerank = 1.0 / (RRF_K + tt_rank)
        keep = np.argsort(-prerank, kind="stable")[: self.rank_candidates]
        return Candidates(idx[keep], tt_score[keep], tt_rank[keep], cooc_score[keep], cooc_rank[keep], last1[keep],
                          prerank[keep].astype(np.float32))

    # ---- stage 2 -------------------------------------------------------------------------
    def features(self, states: list[UserState], cands: list[Candidates],
                 recents: list[np.ndarray]) -> list[np.ndarray]:
        """The ranker's feature matrix of each user's candidates."""
        return [candidate_features(s, r, c, self.catalog, self.item_emb, self.trending.counts(c.idx, s))
                for s, c, r in zip(states, cands, recents)]

    def recommend(self, states: list[UserState], k: int = 10, mmr_lambda: float = 1.0,
                  use_ranker: bool = True) -> list[Recommendation]:
        """Top-``k`` per user, best first, seen items excluded (``use_ranker=False``: by the
        two-tower score alone; ``mmr_lambda`` < 1: MMR diversity re-ranking)."""
        t0 = time.perf_counter()
        cands, recents = self.retrieve(states)
        t1 = time.perf_counter()
        if self.ranker is not None and use_ranker:
            feats = self.features(states, cands, recents)
            sizes = [f.shape[0] for f in feats]
            x = np.vstack(feats) if feats else np.zeros((0, 1))
            scores = np.split(self.ranker.predict(x, self.config.ranker_threads), np.cumsum(sizes)[:-1])
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
