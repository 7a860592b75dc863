"""Training of the two-tower model.

Objective: next-item prediction over every prefix of each user's train sequence, sampled softmax
over in-batch negatives with temperature and log-Q correction (the batch samples items by their
frequency as targets, so ``log q`` is subtracted from the logits). Early stopping on validation
recall@100 of exact retrieval; deterministic for a seed.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from recsys.data.splits import order_interactions
from recsys.features.catalog import Catalog
from recsys.features.users import UserState
from recsys.features.weights import sample_weights
from recsys.models.two_tower.network import TwoTowerConfig, TwoTowerModel, year_bucket
from recsys.models.two_tower.tower import TwoTower

if TYPE_CHECKING:
    from recsys.config import Settings

log = logging.getLogger(__name__)
USER_ID_DROPOUT = 0.2  # share of examples trained as an unknown user (robust to unknown users)
VALIDATION_K = 100


@dataclass
class Examples:
    """The training sequences, flattened: item index per position, the position's user index and
    demographics, where its user's sequence starts, and the positions that are examples (those
    with at least one earlier item)."""

    flat: np.ndarray
    start_of: np.ndarray
    examples: np.ndarray
    user_index: np.ndarray
    demographics: torch.Tensor
    log_q: torch.Tensor
    weights: torch.Tensor | None = None  # per position (recsys.features.weights); None = all 1


def _sequences(train: pd.DataFrame, catalog: Catalog) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Flattened item indices in canonical order, each row's user, its user's start offset and
    its sample weight (None: all 1). Items the catalog lacks are left out."""
    ordered = order_interactions(train)
    idx = catalog.indices_aligned(ordered["item_id"].to_numpy())
    if (idx < 0).any():  # a history may hold items this catalog lacks (released after its cut-off)
        ordered, idx = ordered[idx >= 0].reset_index(drop=True), idx[idx >= 0]
    users = ordered["user_id"].to_numpy(np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
    lengths = np.diff(np.r_[starts, len(users)])
    start_of = np.repeat(starts, lengths)
    return idx.astype(np.int64), users, start_of, sample_weights(ordered)


def training_examples(train: pd.DataFrame, tt: TwoTower, user_table: pd.DataFrame) -> Examples:
    """:class:`Examples` of ``train`` for the (untrained) model ``tt``."""
    catalog, user_ids = tt.catalog, tt.user_ids
    states = {int(r["user_id"]): UserState.from_row(r) for r in user_table.to_dict("records")}
    flat, users, start_of, weights = _sequences(train, catalog)
    examples = np.flatnonzero(np.arange(len(flat)) > start_of)
    u_index = np.array([tt.user_index(int(u)) for u in users], dtype=np.int64)
    demo_rows = tt.encode_states([states.get(int(u), UserState(user_id=int(u))) for u in user_ids])[2]
    demo_of = {int(u): demo_rows[i] for i, u in enumerate(user_ids)}
    zeros = torch.zeros(3, dtype=torch.int64)
    demo_all = (torch.stack([demo_of.get(int(u), zeros) for u in users]) if len(users)
                else torch.zeros((0, 3), dtype=torch.int64))
    target_freq = np.bincount(flat[examples], minlength=len(catalog)).astype(np.float64) + 1.0
    log_q = torch.from_numpy(np.log(target_freq / target_freq.sum()).astype(np.float32))
    w = torch.from_numpy(weights.astype(np.float32)) if weights is not None else None
    return Examples(flat, start_of, examples, u_index, demo_all, log_q, w)


def _batch_loss(model: TwoTowerModel, data: Examples, pos: np.ndarray, rng: np.random.Generator,
                temperature: float) -> torch.Tensor:
    """Sampled-softmax loss of the examples at positions ``pos`` (in-batch negatives, log-Q)."""
    offsets = np.arange(-model.cfg.history_len, 0)
    gather = pos[:, None] + offsets[None, :]
    valid = gather >= data.start_of[pos][:, None]
    hist = np.where(valid, data.flat[np.maximum(gather, 0)] + 1, 0)
    user = data.user_index[pos].copy()
    user[rng.random(len(pos)) < USER_ID_DROPOUT] = 0
    target = torch.from_numpy(data.flat[pos])
    inputs = model.item_inputs()
    u = model.user_tower(torch.from_numpy(hist), torch.from_numpy(user), data.demographics[pos], inputs)
    v = model.item_tower(target + 1, inputs)
    logits = (u @ v.T) / temperature - data.log_q[target][None, :]
    dup = (target[:, None] == target[None, :]) & ~torch.eye(len(pos), dtype=torch.bool)
    logits = logits.masked_fill(dup, float("-inf"))
    if data.weights is None:
        return F.cross_entropy(logits, torch.arange(len(pos)))
    w = data.weights[torch.from_numpy(pos)]
    return (F.cross_entropy(logits, torch.arange(len(pos)), reduction="none") * w).sum() / w.sum().clamp(min=1e-6)


def _run_epoch(model: TwoTowerModel, data: Examples, opt: torch.optim.Optimizer, rng: np.random.Generator,
               settings: Settings, desc: str, progress: bool) -> float:
    """One pass over the examples in a random order; the mean batch loss."""
    model.train()
    order = rng.permutation(data.examples)
    bs = settings.tt_batch_size
    losses: list[float] = []
    bar = tqdm(range(0, len(order), bs), desc=desc, disable=not progress, leave=False, mininterval=1.0)
    for a in bar:
        loss = _batch_loss(model, data, order[a:a + bs], rng, settings.tt_temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if len(losses) % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    model.eval()
    return float(np.mean(losses)) if losses else 0.0


def new_two_tower(catalog: Catalog, user_table: pd.DataFrame, settings: Settings) -> TwoTower:
    """An untrained two-tower model for ``catalog`` and the users of ``user_table``."""
    user_ids = np.sort(user_table["user_id"].to_numpy(np.int64))
    cfg = TwoTowerConfig(n_items=len(catalog), n_users=len(user_ids), dim=settings.embedding_dim,
                         history_len=settings.history_len, dropout=settings.tt_dropout)
    return TwoTower(TwoTowerModel(cfg, catalog.genres, year_bucket(catalog.year)), catalog, user_ids)


def train_two_tower(
    train: pd.DataFrame,
    catalog: Catalog,
    user_table: pd.DataFrame,
    settings: Settings,
    validation: tuple[list[UserState], dict[int, set[int]]] | None = None,
    epochs: int | None = None,
    progress: bool = True,
) -> tuple[TwoTower, dict[str, Any]]:
    """Fit the towers on ``train``; early-stop on validation recall@100 when ``validation``.

    ``validation`` is (user states at the end of train, held-out item ids per user). Without it
    the model trains for exactly ``epochs`` (default ``settings.tt_epochs``). Returns the model
    (best epoch) and a history dict.
    """
    with deterministic_torch():
        return _train(train, catalog, user_table, settings, validation, epochs, progress)


@contextlib.contextmanager
def deterministic_torch() -> Iterator[None]:
    """Torch's deterministic algorithms while training: with several threads, some CPU kernels
    (the embedding gradients' scatter-adds) otherwise sum in a varying order, so the same seed
    gave slightly different towers, and a different ranker, from run to run."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def _train(train: pd.DataFrame, catalog: Catalog, user_table: pd.DataFrame, settings: Settings,
           validation: tuple[list[UserState], dict[int, set[int]]] | None, epochs: int | None,
           progress: bool) -> tuple[TwoTower, dict[str, Any]]:
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    tt = new_two_tower(catalog, user_table, settings)
    model = tt.model
    data = training_examples(train, tt, user_table)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.tt_learning_rate, weight_decay=settings.tt_weight_decay)
    max_epochs = epochs or settings.tt_epochs
    best = (-1.0, 0, copy.deepcopy(model.state_dict()))
    history: dict[str, Any] = {"epochs": [], f"val_recall@{VALIDATION_K}": [], "loss": []}
    bad = 0
    t0 = time.perf_counter()
    for epoch in range(1, max_epochs + 1):
        loss = _run_epoch(model, data, opt, rng, settings, f"two-tower epoch {epoch}/{max_epochs}", progress)
        tt.weights_changed()
        history["epochs"].append(epoch)
        history["loss"].append(loss)
        if validation is None:
            best = (0.0, epoch, copy.deepcopy(model.state_dict()))
            log.info("two-tower epoch %d loss %.4f", epoch, loss)
            continue
        rec = validation_recall(tt, *validation, k=VALIDATION_K)
        history[f"val_recall@{VALIDATION_K}"].append(rec)
        log.info("two-tower epoch %d loss %.4f val recall@%d %.4f", epoch, loss, VALIDATION_K, rec)
        if progress:
            tqdm.write(f"two-tower epoch {epoch}: loss {loss:.4f}  val recall@{VALIDATION_K} {rec:.4f}")
        if rec > best[0]:
            best, bad = (rec, epoch, copy.deepcopy(model.state_dict())), 0
        else:
            bad += 1
            if bad >= settings.tt_patience:
                break
    model.load_state_dict(best[2])
    model.eval()
    tt.weights_changed()
    history.update(best_epoch=best[1], best_val_recall=best[0], seconds=time.perf_counter() - t0,
                   examples=int(len(data.examples)))
    return tt, history


def validation_recall(tt: TwoTower, states: list[UserState], held_out: dict[int, set[int]], k: int = 100) -> float:
    """Mean recall@k of exact two-tower retrieval, the user's seen items excluded."""
    if not states:
        return 0.0
    scores = tt.embed_users(states) @ tt.item_embeddings().T
    for row, s in enumerate(states):
        seen = tt.catalog.indices(s.seen_items)
        scores[row, seen] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k] if scores.shape[1] > k else np.argsort(-scores, axis=1)
    recalls = []
    for row, s in enumerate(states):
        rel = held_out.get(s.user_id, set())
        if rel:
            recalls.append(len(set(tt.catalog.item_ids[top[row]].tolist()) & rel) / len(rel))
    return float(np.mean(recalls)) if recalls else 0.0
