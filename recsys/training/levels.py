"""Three time-ordered levels of one split: what each training stage learns from and is checked on.

For a protocol, ``train`` / ``test`` come from :func:`recsys.data.splits.split`. Two validation
levels are carved out of train the same way test was carved out of the full data:

* level 2: history = train minus two hold-outs, labels = the earlier hold-out (``val2``).
  The two-tower is fit here (early stopping on ``val2`` recall); the ranker's training table
  is built here.
* level 1: history = train minus one hold-out, labels = ``val`` (later in time than ``val2``):
  the ranker's early-stopping table (same level-2 towers, so no model saw these labels).
* level 0: history = all of train. The towers are refit for the best epoch count, the index,
  co-occurrence and item statistics rebuilt: this is the bundle that is evaluated on test and
  served. Test interactions never reach any feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.data.movielens import InteractionData
from recsys.data.splits import prepare, split, validation_split
from recsys.features.catalog import Catalog
from recsys.features.items import build_item_table, with_genres
from recsys.features.users import UserState, build_user_table, user_states
from recsys.features.weights import relevance_grades

LEVELS = (2, 1, 0)  # the order they are built in: level 1 takes level 2's items


@dataclass
class Level:
    """History (``train``) and held-out ``labels`` at one point in time."""

    train: pd.DataFrame
    catalog: Catalog
    user_table: pd.DataFrame
    states: dict[int, UserState]
    labels: dict[int, set[int]]
    grades: dict[int, dict[int, int]] | None = None  # graded labels when the held-out events differ in kind

    def label_states(self) -> list[UserState]:
        """The states of the labelled users, by user id."""
        return [self.states[u] for u in sorted(self.labels)]


@dataclass
class Levels:
    """The three levels of one split."""

    protocol: str
    level2: Level
    level1: Level
    level0: Level


def make_level(data: InteractionData, train: pd.DataFrame, held: pd.DataFrame, history_len: int,
               items: np.ndarray | None = None) -> Level:
    """The level whose history is ``train`` and labels ``held`` (catalog limited to ``items``)."""
    table = build_item_table(data.items, train)
    if items is not None:
        table = table[table["item_id"].isin(items)]
    catalog = Catalog(table, ref_ts=int(train["timestamp"].max()))
    user_table = build_user_table(data.users, with_genres(train, data.items), history_len)
    states = user_states(user_table)
    known = set(catalog.item_ids.tolist())
    labels = {}
    for u, items_u in held.groupby("user_id")["item_id"]:
        rel = set(items_u.tolist()) & known
        if rel and int(u) in states:
            labels[int(u)] = rel
    return Level(train, catalog, user_table, states, labels, _grades(held, labels))


def _grades(held: pd.DataFrame, labels: dict[int, set[int]]) -> dict[int, dict[int, int]] | None:
    """Each labelled item's best grade (recsys.features.weights); None when every grade is 1."""
    grades = relevance_grades(held)
    if (grades == 1).all():
        return None
    best = held.assign(grade=grades).groupby(["user_id", "item_id"])["grade"].max()
    return {u: {i: int(best[(u, i)]) for i in items} for u, items in labels.items()}


def level_splits(
    train: pd.DataFrame, test: pd.DataFrame, protocol: str
) -> dict[int, tuple[pd.DataFrame, pd.DataFrame]]:
    """(history, held-out) of each level, from the protocol's train/test split."""
    inner, val = validation_split(train, protocol)
    inner2, val2 = validation_split(inner, protocol)
    return {2: (inner2, val2), 1: (inner, val), 0: (train, test)}


def make_levels(data: InteractionData, splits: dict[int, tuple[pd.DataFrame, pd.DataFrame]], protocol: str,
                history_len: int) -> Levels:
    """The three levels of :func:`level_splits` (level 1 with level 2's catalog: its towers)."""
    lv2 = make_level(data, *splits[2], history_len)
    lv1 = make_level(data, *splits[1], history_len, items=lv2.catalog.item_ids)
    lv0 = make_level(data, *splits[0], history_len)
    return Levels(protocol, lv2, lv1, lv0)


def serving_user_table(data: InteractionData, protocol: str, history_len: int) -> pd.DataFrame:
    """The user rows a model version serves with: built from every interaction the protocol keeps
    (its test slice included), so the online store starts from each user's latest history; the
    model is still trained and evaluated on the levels, which never see the test slice."""
    return build_user_table(data.users, with_genres(prepare(data.interactions, protocol), data.items), history_len)


def prepare_levels(data: InteractionData, protocol: str, history_len: int) -> Levels:
    """Split ``data`` by ``protocol`` and build the three levels."""
    train, test = split(data.interactions, protocol)
    return make_levels(data, level_splits(train, test, protocol), protocol, history_len)
