"""The two-tower network (PyTorch): item tower and sequence-aware user tower.

* Item tower: item id + genres + release-year bucket -> residual MLP -> L2-normalized vector.
* User tower: the last ``history_len`` items (item-tower inputs + recency position embeddings),
  then the most recent position and an attention pooling over all positions (query from the last
  item and the user), concatenated with user id + demographics -> MLP -> L2-normalized.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys.data.movielens import AGES

N_YEAR_BUCKETS = 20
N_OCCUPATIONS = 21  # GroupLens occupation codes 0..20 (higher values are clipped to 21)


def year_bucket(year: np.ndarray) -> np.ndarray:
    """0 for unknown, then 5-year buckets from 1920 (before 1920 -> 1, 2000s -> the last)."""
    b = np.clip((np.asarray(year) - 1915) // 5, 1, N_YEAR_BUCKETS - 1)
    return np.where(np.asarray(year) > 0, b, 0).astype(np.int64)


@dataclass
class TwoTowerConfig:
    """The network's shape (``two_tower.json`` in a bundle)."""

    n_items: int
    n_users: int
    dim: int
    history_len: int
    dropout: float = 0.1
    n_genres: int = 18


class TwoTowerModel(nn.Module):
    """Both towers. Item index ``i`` is fed as ``i + 1``; 0 is padding / unknown."""

    def __init__(self, cfg: TwoTowerConfig, item_genres: np.ndarray, item_year_bucket: np.ndarray):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.register_buffer(
            "genres", torch.from_numpy(np.vstack([np.zeros((1, cfg.n_genres), np.float32), item_genres]))
        )
        self.register_buffer("year_bucket", torch.from_numpy(np.r_[0, item_year_bucket].astype(np.int64)))
        self.item_emb = nn.Embedding(cfg.n_items + 1, d, padding_idx=0)
        self.genre_proj = nn.Linear(cfg.n_genres, d, bias=False)
        self.year_emb = nn.Embedding(N_YEAR_BUCKETS, d)
        self.item_mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.pos_emb = nn.Embedding(cfg.history_len, d)
        self.query = nn.Linear(2 * d, d)
        self.user_emb = nn.Embedding(cfg.n_users + 1, d)
        self.gender_emb = nn.Embedding(3, d)
        self.age_emb = nn.Embedding(len(AGES) + 1, d)
        self.occ_emb = nn.Embedding(N_OCCUPATIONS + 1, d)
        self.user_mlp = nn.Sequential(nn.Linear(3 * d, 2 * d), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(2 * d, d))
        nn.init.normal_(self.item_emb.weight, std=0.05)
        nn.init.normal_(self.user_emb.weight, std=0.01)

    def item_inputs(self) -> torch.Tensor:
        """Input representation of every item (row 0 = padding): id + genres + year."""
        return self.item_emb.weight + self.genre_proj(self.genres) + self.year_emb(self.year_bucket)

    def item_tower(self, idx1: torch.Tensor, inputs: torch.Tensor | None = None) -> torch.Tensor:
        x = (self.item_inputs() if inputs is None else inputs)[idx1]
        return F.normalize(x + self.item_mlp(x), dim=-1)

    def user_tower(
        self, hist: torch.Tensor, user: torch.Tensor, demo: torch.Tensor, inputs: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``hist`` [B, N] left-padded item indices + 1 (most recent last); ``demo`` [B, 3]."""
        n = hist.shape[1]
        pad = hist == 0
        empty = pad.all(dim=1)
        pad = pad.clone()
        pad[empty, -1] = False  # an empty history attends to one zero slot instead of NaN
        pos = torch.arange(n - 1, -1, -1, device=hist.device)  # 0 = most recent
        h = F.embedding(hist, self.item_inputs() if inputs is None else inputs) + self.pos_emb(pos)[None]
        last = h[:, -1]
        ctx = self.user_emb(user) + self.gender_emb(demo[:, 0]) + self.age_emb(demo[:, 1]) + self.occ_emb(demo[:, 2])
        q = self.query(torch.cat([last, ctx], dim=-1))
        att = (h @ q.unsqueeze(-1)).squeeze(-1) / np.sqrt(self.cfg.dim)
        att = att.masked_fill(pad, float("-inf")).softmax(dim=-1)
        pooled = (att.unsqueeze(-1) * h).sum(dim=1)
        return F.normalize(self.user_mlp(torch.cat([last, pooled, ctx], dim=-1)), dim=-1)


class UserTowerModule(nn.Module):
    """The user tower with the item input table fixed (what serving traces)."""

    inputs: torch.Tensor

    def __init__(self, model: TwoTowerModel, inputs: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("inputs", inputs)

    def forward(self, hist: torch.Tensor, user: torch.Tensor, demo: torch.Tensor) -> torch.Tensor:
        return self.model.user_tower(hist, user, demo, self.inputs)
