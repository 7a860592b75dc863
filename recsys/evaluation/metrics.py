"""Ranking metrics as pure functions over one user's ranked list and held-out items.

Conventions: ``ranked`` is the model's list, best first, already excluding the user's train
items; ``relevant`` is the set of the user's test items. Relevance is binary.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np


def dcg_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    """DCG@K = sum over positions i=1..K of rel_i / log2(i + 1), rel_i in {0, 1}."""
    return float(sum(1.0 / np.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in relevant))


def ndcg_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    """NDCG@K = DCG@K / IDCG@K, where IDCG@K puts min(|relevant|, K) hits at the top.

    Binary relevance (Järvelin & Kekäläinen 2002, with the log2(i + 1) discount). 0 if no
    relevant items.
    """
    if not relevant:
        return 0.0
    ideal = sum(1.0 / np.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg_at_k(ranked, relevant, k) / ideal


def recall_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    """Recall@K = |top-K ∩ relevant| / |relevant| (0 if no relevant items)."""
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & relevant) / len(relevant)


def hit_rate_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    """HR@K = 1 if any relevant item is in the top K, else 0."""
    return float(any(item in relevant for item in ranked[:k]))


def mrr(ranked: Sequence[int], relevant: set[int], cutoff: int = 100) -> float:
    """Reciprocal rank 1/r of the first relevant item if r <= ``cutoff`` (100), else 0."""
    for i, item in enumerate(ranked[:cutoff]):
        if item in relevant:
            return 1.0 / (i + 1)
    return 0.0


def catalog_coverage(lists: Iterable[Sequence[int]], n_catalog: int, k: int = 10) -> float:
    """Coverage@K = |union of all users' top-K| / catalog size (train items)."""
    seen: set[int] = set()
    for ranked in lists:
        seen.update(ranked[:k])
    return len(seen) / n_catalog if n_catalog else 0.0


def intra_list_diversity(ranked: Sequence[int], genres: dict[int, frozenset[str]], k: int = 10) -> float:
    """ILD@K: mean pairwise Jaccard distance between the genre sets of the top-K items.

    1 - |G_a ∩ G_b| / |G_a ∪ G_b| averaged over the K(K-1)/2 pairs (0 for fewer than 2 items;
    two items without genres count as identical).
    """
    top = [genres.get(i, frozenset()) for i in ranked[:k]]
    if len(top) < 2:
        return 0.0
    total, pairs = 0.0, 0
    for a in range(len(top)):
        for b in range(a + 1, len(top)):
            union = top[a] | top[b]
            total += 1.0 - (len(top[a] & top[b]) / len(union) if union else 1.0)
            pairs += 1
    return total / pairs


def evaluate_lists(
    ranked_lists: Mapping[int, Sequence[int]],
    test: Mapping[int, set[int]],
    n_catalog: int,
    genres: dict[int, frozenset[str]],
    ks: Sequence[int] = (1, 5, 10, 20, 50, 100),
) -> dict[str, float]:
    """Average every metric over the users of ``test`` (a missing list counts as empty)."""
    users = sorted(test)
    out: dict[str, float] = {}
    lists = [list(ranked_lists.get(u, ())) for u in users]
    for k in ks:
        out[f"ndcg@{k}"] = float(np.mean([ndcg_at_k(r, test[u], k) for u, r in zip(users, lists)]))
        out[f"recall@{k}"] = float(np.mean([recall_at_k(r, test[u], k) for u, r in zip(users, lists)]))
        out[f"hr@{k}"] = float(np.mean([hit_rate_at_k(r, test[u], k) for u, r in zip(users, lists)]))
    out["mrr"] = float(np.mean([mrr(r, test[u]) for u, r in zip(users, lists)]))
    out["coverage@10"] = catalog_coverage(lists, n_catalog, 10)
    out["diversity@10"] = float(np.mean([intra_list_diversity(r, genres, 10) for r in lists]))
    out["users"] = float(len(users))
    return out
