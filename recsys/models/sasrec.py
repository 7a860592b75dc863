"""SASRec (Kang & McAuley 2018), the sequential baseline, trained with full-softmax cross-entropy.

Self-attentive sequential recommendation: item embeddings (index 0 = padding) plus learned
positions, ``layers`` causal Transformer blocks (pre-LN), and the output at every position
scored against every item embedding (tied weights). Trained like the replicability studies'
strong variant (Klenitskiy & Vasilev 2023): cross-entropy over the whole catalog for the next
item at every position of each user's last ``max_len + 1`` items (every prefix is an example).

Sequences are right-padded (position 0 = the oldest kept item): with a causal mask no real
position ever attends to padding, and a user's representation is the output at the position of
their latest item. At inference a trained user's sequence is the one ``fit`` saw (the canonical
order of :func:`recsys.data.splits.order_interactions`); an unknown user's is the state's
``seen_items`` (a user-table row holds them in canonical order); a user with no catalog item in
either gets log-popularity scores, like :class:`~recsys.models.baselines.Popularity`. Items the
catalog lacks are dropped from every history. Ranking with seen items removed is
:class:`~recsys.models.base.ScoreRecommender`'s.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from recsys.data.splits import order_interactions
from recsys.features.catalog import Catalog
from recsys.features.users import UserState
from recsys.models.base import ScoreRecommender
from recsys.models.two_tower.training import deterministic_torch

if TYPE_CHECKING:
    from recsys.config import Settings

log = logging.getLogger(__name__)
SCORE_BATCH = 256


@dataclass(frozen=True)
class SASRecConfig:
    """Hyper-parameters (``SASREC_*`` settings; the seed and torch threads are the project's)."""

    layers: int = 2
    dim: int = 64
    heads: int = 1
    dropout: float = 0.2
    max_len: int = 50
    learning_rate: float = 3e-3
    batch_size: int = 64
    max_epochs: int = 30
    patience: int = 3
    seed: int = 42
    threads: int = 0  # torch threads, 0 = torch's default

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SASRecConfig:
        values = dict(layers=settings.sasrec_layers, dim=settings.sasrec_dim, heads=settings.sasrec_heads,
                      dropout=settings.sasrec_dropout, max_len=settings.sasrec_max_len,
                      learning_rate=settings.sasrec_learning_rate, batch_size=settings.sasrec_batch_size,
                      max_epochs=settings.sasrec_max_epochs, patience=settings.sasrec_patience, seed=settings.seed,
                      threads=settings.torch_threads)
        return cls(**{**values, **overrides})

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "threads"}


class SASRecNet(nn.Module):
    """Embeddings + causal Transformer blocks; ``forward`` gives the output at every position."""

    def __init__(self, n_items: int, cfg: SASRecConfig):
        super().__init__()
        self.items = nn.Embedding(n_items + 1, cfg.dim, padding_idx=0)
        self.positions = nn.Embedding(cfg.max_len, cfg.dim)
        self.dropout = nn.Dropout(cfg.dropout)
        block = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, dim_feedforward=cfg.dim, dropout=cfg.dropout,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)
        self.scale = math.sqrt(cfg.dim)
        nn.init.normal_(self.items.weight, std=cfg.dim ** -0.5)
        with torch.no_grad():
            self.items.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """``seq``: [B, L] item index + 1, right-padded with 0 -> [B, L, dim]."""
        length = seq.shape[1]
        x = self.items(seq) * self.scale + self.positions(torch.arange(length, device=seq.device))[None]
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=seq.device)
        return self.norm(self.blocks(self.dropout(x), mask=mask, is_causal=True))

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every catalog item (tied weights): [..., dim] -> [..., n_items]."""
        return hidden @ self.items.weight[1:].T


def padded(seqs: Sequence[np.ndarray], shift: int = 1) -> np.ndarray:
    """Right-padded [len(seqs), longest] array of each sequence + ``shift`` (0 = padding)."""
    out = np.zeros((len(seqs), max((len(s) for s in seqs), default=0)), np.int64)
    for row, s in enumerate(seqs):
        out[row, :len(s)] = s + shift
    return out


def user_sequences(train: pd.DataFrame, catalog: Catalog) -> dict[int, np.ndarray]:
    """Each user's catalog indices in canonical order (items the catalog lacks dropped)."""
    ordered = order_interactions(train)
    idx = catalog.indices_aligned(ordered["item_id"].to_numpy())
    keep = idx >= 0
    users = ordered["user_id"].to_numpy(np.int64)[keep]
    idx = idx[keep].astype(np.int64)
    if not users.size:
        return {}
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
    return {int(users[a]): idx[a:b] for a, b in zip(starts, np.r_[starts[1:], users.size])}


Validate = Callable[["SASRec"], float]


class SASRec(ScoreRecommender):
    """SASRec as a :class:`~recsys.models.base.ScoreRecommender` (name ``sasrec``).

    ``fit`` trains for ``epochs`` epochs, or, with ``validate`` (a function of the model
    returning a validation score, higher is better), up to ``max_epochs`` with early stopping
    after ``patience`` epochs without improvement, keeping the best epoch's weights.
    ``history`` records the loss, validation score and seconds per epoch and the best epoch.
    """

    name = "sasrec"

    def __init__(self, config: SASRecConfig | None = None):
        self.config = config or SASRecConfig()
        self.history: dict[str, Any] = {}

    def fit(self, train: pd.DataFrame, catalog: Catalog, states: Sequence[UserState] = (),
            epochs: int | None = None, validate: Validate | None = None) -> SASRec:
        cfg = self.config
        self.catalog = catalog
        self._sequences = user_sequences(train, catalog)
        self._popularity = np.log1p(catalog.popularity).astype(np.float32)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.net = SASRecNet(len(catalog), cfg)
        with deterministic_torch():
            self._train(epochs, validate)
        self.net.eval()
        return self

    def _train(self, epochs: int | None, validate: Validate | None) -> None:
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        windows = [s[-(cfg.max_len + 1):] for s in self._sequences.values() if len(s) >= 2]
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.98))
        max_epochs = epochs if epochs is not None else cfg.max_epochs
        hist: dict[str, Any] = {"loss": [], "val_ndcg@10": [], "epoch_seconds": [], "examples": 0}
        best: tuple[float, int, dict[str, torch.Tensor] | None] = (-1.0, 0, None)
        t0 = time.perf_counter()
        for epoch in range(1, max_epochs + 1):
            t = time.perf_counter()
            loss, n = self._epoch(windows, opt, rng)
            hist["loss"].append(loss)
            hist["examples"] = n
            hist["epoch_seconds"].append(time.perf_counter() - t)
            if validate is None:
                best = (0.0, epoch, None)
                continue
            self.net.eval()
            score = validate(self)
            hist["val_ndcg@10"].append(score)
            log.info("sasrec epoch %d loss %.4f val ndcg@10 %.4f", epoch, loss, score)
            if score > best[0]:
                best = (score, epoch, copy.deepcopy(self.net.state_dict()))
            elif epoch - best[1] >= cfg.patience:
                break
        if best[2] is not None:
            self.net.load_state_dict(best[2])
        hist.update(best_epoch=best[1], best_val_ndcg10=best[0] if validate else None,
                    epochs=len(hist["loss"]), seconds=time.perf_counter() - t0)
        self.history = hist

    def _epoch(self, windows: list[np.ndarray], opt: torch.optim.Optimizer,
               rng: np.random.Generator) -> tuple[float, int]:
        """One pass over the users' windows in a random order: (mean loss per example, examples)."""
        self.net.train()
        total, count = 0.0, 0
        order = rng.permutation(len(windows))
        for a in range(0, len(order), self.config.batch_size):
            batch = [windows[i] for i in order[a:a + self.config.batch_size]]
            seq = torch.from_numpy(padded([w[:-1] for w in batch]))
            target = torch.from_numpy(_targets(batch))
            valid = target >= 0
            hidden = self.net(seq)[valid]
            loss = F.cross_entropy(self.net.logits(hidden), target[valid])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * int(valid.sum())
            count += int(valid.sum())
        self.net.eval()
        return (total / count if count else 0.0), count

    # ---- inference ---------------------------------------------------------------------
    def sequence(self, state: UserState) -> np.ndarray:
        """The catalog indices the model reads for ``state`` (see the module docstring)."""
        seq = self._sequences.get(int(state.user_id))
        if seq is None:
            seq = self.catalog.indices(state.seen_items or state.recent_items)
        return seq[-self.config.max_len:]

    def scores(self, states: list[UserState]) -> np.ndarray:
        out = np.empty((len(states), len(self.catalog)), np.float32)
        seqs = [self.sequence(s) for s in states]
        for a in range(0, len(states), SCORE_BATCH):
            chunk = seqs[a:a + SCORE_BATCH]
            rows = [i for i, s in enumerate(chunk) if s.size]
            out[a:a + len(chunk)] = self._popularity
            if rows:
                out[[a + i for i in rows]] = self._score_sequences([chunk[i] for i in rows])
        return out

    def _score_sequences(self, seqs: list[np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            hidden = self.net(torch.from_numpy(padded(seqs)))
            last = hidden[torch.arange(len(seqs)), torch.tensor([len(s) - 1 for s in seqs])]
            return self.net.logits(last).numpy().astype(np.float32)


def _targets(windows: list[np.ndarray]) -> np.ndarray:
    """The next item at every input position (catalog index), -1 where the row is padding."""
    out = np.full((len(windows), max(len(w) for w in windows) - 1), -1, np.int64)
    for row, w in enumerate(windows):
        out[row, :len(w) - 1] = w[1:]
    return out
