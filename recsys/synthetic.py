"""A small synthetic MovieLens look-alike in the GroupLens format, for tests.

Users have genre tastes, items have a popularity skew, and each user's ratings follow a
sequence (an item is often followed by one of its few 'successors'), so both taste-based and
sequence-aware models have something to learn and a random ranker clearly loses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys.data import GENRES


def write_synthetic(
    out_dir: str | Path,
    n_users: int = 300,
    n_items: int = 400,
    mean_ratings: int = 60,
    seed: int = 0,
) -> Path:
    """Write ``ratings.dat``, ``movies.dat`` and ``users.dat`` to ``out_dir``; return it."""
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_genres = len(GENRES)

    item_genre = rng.integers(0, n_genres, n_items)
    second = rng.integers(0, n_genres, n_items)
    years = rng.integers(1930, 2001, n_items)
    popularity = rng.zipf(1.6, n_items).astype(float)
    popularity = np.minimum(popularity, 50.0)
    successors = rng.integers(0, n_items, (n_items, 3))

    with (out / "movies.dat").open("w", encoding="latin-1") as fh:
        for i in range(n_items):
            gs = {GENRES[item_genre[i]], GENRES[second[i]]}
            fh.write(f"{i + 1}::Movie {i + 1} ({years[i]})::{'|'.join(sorted(gs))}\n")

    ages = (1, 18, 25, 35, 45, 50, 56)
    with (out / "users.dat").open("w", encoding="latin-1") as fh:
        for u in range(n_users):
            fh.write(f"{u + 1}::{'MF'[u % 2]}::{ages[u % len(ages)]}::{u % 21}::{10000 + u:05d}\n")

    t0 = 956_703_932  # 2000-04-26, like ml-1m
    with (out / "ratings.dat").open("w", encoding="latin-1") as fh:
        for u in range(n_users):
            liked = rng.choice(n_genres, 2, replace=False)
            weight = popularity * np.where(np.isin(item_genre, liked), 8.0, 1.0)
            p = weight / weight.sum()
            n = int(np.clip(rng.poisson(mean_ratings), 8, n_items // 2))
            seen: list[int] = []
            seen_set: set[int] = set()
            cur = int(rng.choice(n_items, p=p))
            while len(seen) < n:
                if cur not in seen_set:
                    seen.append(cur)
                    seen_set.add(cur)
                if rng.random() < 0.6:
                    cur = int(successors[cur, rng.integers(0, 3)])
                else:
                    cur = int(rng.choice(n_items, p=p))
            ts = t0 + np.sort(rng.integers(0, 86_400 * 200, n))
            for item, t in zip(seen, ts):
                rating = int(np.clip(round(rng.normal(4.0 if item_genre[item] in liked else 3.0, 1.0)), 1, 5))
                fh.write(f"{u + 1}::{item + 1}::{rating}::{int(t)}\n")
    return out
