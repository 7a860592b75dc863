"""A small synthetic MovieLens look-alike in the GroupLens format, for tests.

Users have genre tastes, items have a popularity skew, and each user's ratings follow a
sequence (an item is often followed by one of its few 'successors'), so both taste-based and
sequence-aware models have something to learn and a random ranker clearly loses.

``irregular=True`` adds the shapes real logs have and tidy data hides: items that first appear
late (a share of the catalog is released in the last tenth of the time span, so validation
levels meet items their catalog lacks), very short users (1-3 ratings), a month-long global gap
in time and ids with holes (neither users nor items numbered 1..n).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys.data.movielens import AGES, GENRES

SPAN = 86_400 * 200  # seconds the ratings span
GAP_START, GAP = SPAN // 2, 86_400 * 30  # nobody rates for a month in the middle


class _Irregular:
    """The irregular shapes of ``write_synthetic(irregular=True)``."""

    def __init__(self, rng: np.random.Generator, n_users: int, n_items: int):
        self.short = rng.random(n_users) < 0.1
        late = np.arange(n_items) >= int(0.85 * n_items)  # ids are given in release order: the newest are the highest
        self.release = np.where(late, rng.integers(int(0.9 * SPAN), SPAN, n_items), 0)
        self.rng = rng

    @staticmethod
    def item_id(i: int) -> int:
        return 1 + i + 3 * (i // 5)  # holes in the id range, like ml-1m's

    @staticmethod
    def user_id(u: int) -> int:
        return 1 + 2 * u

    def timestamps(self, t0: int, items: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """A late item is rated at or after its release; everything after the gap's start moves by the gap."""
        rel = self.release[items]
        moved = np.where(offsets < rel, rel + self.rng.integers(0, 86_400, offsets.size), offsets)
        moved = np.minimum(moved, SPAN)
        return t0 + np.where(moved >= GAP_START, moved + GAP, moved)


def _walk(rng: np.random.Generator, n: int, p: np.ndarray, successors: np.ndarray) -> list[int]:
    """``n`` distinct items: a walk that often moves to one of an item's successors (order carries signal)."""
    seen: list[int] = []
    seen_set: set[int] = set()
    cur = int(rng.choice(len(p), p=p))
    while len(seen) < n:
        if cur not in seen_set:
            seen.append(cur)
            seen_set.add(cur)
        if rng.random() < 0.6:
            cur = int(successors[cur, rng.integers(0, 3)])
        else:
            cur = int(rng.choice(len(p), p=p))
    return seen


def write_synthetic(
    out_dir: str | Path,
    n_users: int = 300,
    n_items: int = 400,
    mean_ratings: int = 60,
    seed: int = 0,
    irregular: bool = False,
) -> Path:
    """Write ``ratings.dat``, ``movies.dat`` and ``users.dat`` to ``out_dir``; return it."""
    rng = np.random.default_rng(seed)
    shape = _Irregular(rng, n_users, n_items) if irregular else None
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
            iid = shape.item_id(i) if shape else i + 1
            fh.write(f"{iid}::Movie {iid} ({years[i]})::{'|'.join(sorted(gs))}\n")

    with (out / "users.dat").open("w", encoding="latin-1") as fh:
        for u in range(n_users):
            uid = shape.user_id(u) if shape else u + 1
            fh.write(f"{uid}::{'MF'[u % 2]}::{AGES[u % len(AGES)]}::{u % 21}::{10000 + u:05d}\n")

    t0 = 956_703_932  # 2000-04-26, like ml-1m
    with (out / "ratings.dat").open("w", encoding="latin-1") as fh:
        for u in range(n_users):
            liked = rng.choice(n_genres, 2, replace=False)
            weight = popularity * np.where(np.isin(item_genre, liked), 8.0, 1.0)
            p = weight / weight.sum()
            n = int(np.clip(rng.poisson(mean_ratings), 8, n_items // 2))
            if shape and shape.short[u]:
                n = int(rng.integers(1, 4))
            seen = _walk(rng, n, p, successors)
            offsets = np.sort(rng.integers(0, SPAN, n))
            ts = shape.timestamps(t0, np.array(seen), offsets) if shape else t0 + offsets
            for item, t in zip(seen, ts):
                rating = int(np.clip(round(rng.normal(4.0 if item_genre[item] in liked else 3.0, 1.0)), 1, 5))
                uid, iid = (shape.user_id(u), shape.item_id(item)) if shape else (u + 1, item + 1)
                fh.write(f"{uid}::{iid}::{rating}::{int(t)}\n")
    return out
