"""Two-tower retriever (PyTorch) with a sequence-aware user tower.

* Item tower: item id + genres + release-year bucket -> residual MLP -> L2-normalized vector.
* User tower: the last ``history_len`` items (item-tower inputs + recency position embeddings)
  (a self-attention layer cost 10x the training time on 2 CPU cores), then the most recent
  position and an attention
  pooling over all positions (query from the last item and the user), concatenated with user id + demographics -> MLP -> L2-normalized.
* Objective: next-item prediction over every prefix of each user's train sequence, sampled
  softmax over in-batch negatives with temperature and log-Q correction (the batch samples
  items by their frequency as targets, so ``log q`` is subtracted from the logits).
"""

from __future__ import annotations

import copy
import json
import logging
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from recsys.catalog import Catalog
from recsys.features import AGES, UserState

log = logging.getLogger(__name__)
N_YEAR_BUCKETS = 20
GENDERS = {"F": 1, "M": 2}


def year_bucket(year: np.ndarray) -> np.ndarray:
    """0 for unknown, then 5-year buckets from 1920 (before 1920 -> 1, 2000s -> the last)."""
    b = np.clip((np.asarray(year) - 1915) // 5, 1, N_YEAR_BUCKETS - 1)
    return np.where(np.asarray(year) > 0, b, 0).astype(np.int64)


@dataclass
class TwoTowerConfig:
    n_items: int
    n_users: int
    dim: int = 64
    history_len: int = 50
    dropout: float = 0.1
    n_genres: int = 18


class TwoTowerModel(nn.Module):
    """Both towers. Item index ``i`` is fed as ``i + 1``; 0 is padding / unknown."""

    def __init__(self, cfg: TwoTowerConfig, item_genres: np.ndarray, item_year_bucket: np.ndarray):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.register_buffer("genres", torch.from_numpy(np.vstack([np.zeros((1, cfg.n_genres), np.float32), item_genres])))
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
        self.occ_emb = nn.Embedding(22, d)
        self.user_mlp = nn.Sequential(nn.Linear(3 * d, 2 * d), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(2 * d, d))
        nn.init.normal_(self.item_emb.weight, std=0.05)
        nn.init.normal_(self.user_emb.weight, std=0.01)

    def item_inputs(self) -> torch.Tensor:
        """Input representation of every item (row 0 = padding): id + genres + year."""
        return self.item_emb.weight + self.genre_proj(self.genres) + self.year_emb(self.year_bucket)

    def item_tower(self, idx1: torch.Tensor, inputs: torch.Tensor | None = None) -> torch.Tensor:
        x = (self.item_inputs() if inputs is None else inputs)[idx1]
        return F.normalize(x + self.item_mlp(x), dim=-1)

    def user_tower(self, hist: torch.Tensor, user: torch.Tensor, demo: torch.Tensor, inputs: torch.Tensor | None = None) -> torch.Tensor:
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


class _UserTower(nn.Module):
    """The user tower with the item input table fixed (what serving traces)."""

    def __init__(self, model: TwoTowerModel, inputs: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("inputs", inputs)

    def forward(self, hist: torch.Tensor, user: torch.Tensor, demo: torch.Tensor) -> torch.Tensor:
        return self.model.user_tower(hist, user, demo, self.inputs)


class TwoTower:
    """A trained two-tower model with the catalog and user index it was trained with."""

    def __init__(self, model: TwoTowerModel, catalog: Catalog, user_ids: np.ndarray):
        self.model = model.eval()
        self.catalog = catalog
        self.user_ids = np.asarray(user_ids, dtype=np.int64)
        self._user_index = {int(u): i + 1 for i, u in enumerate(self.user_ids)}
        self._item_emb: np.ndarray | None = None
        self._item_inputs: torch.Tensor | None = None  # inference: item input table, computed once
        self._traced: torch.jit.ScriptModule | None = None  # serving: see trace_user_tower
        self._memo: dict[bytes, np.ndarray] | None = None  # serving: see enable_memo
        self._memo_capacity = 0
        self.memo_hits = self.memo_misses = 0

    @property
    def history_len(self) -> int:
        return self.model.cfg.history_len

    # ---- inputs ------------------------------------------------------------------------
    def encode_states(self, states: list[UserState], user_dropout: bool = False) -> tuple[torch.Tensor, ...]:
        n = self.history_len
        hist = np.zeros((len(states), n), dtype=np.int64)
        users = np.zeros(len(states), dtype=np.int64)
        demo = np.zeros((len(states), 3), dtype=np.int64)
        for row, s in enumerate(states):
            idx = self.catalog.indices(s.recent_items)[-n:] + 1
            if idx.size:
                hist[row, n - idx.size:] = idx
            users[row] = self._user_index.get(int(s.user_id), 0)
            demo[row] = (GENDERS.get(s.gender, 0), AGES.index(s.age) + 1 if s.age in AGES else 0, min(max(s.occupation, 0), 21))
        return torch.from_numpy(hist), torch.from_numpy(users), torch.from_numpy(demo)

    # ---- inference ---------------------------------------------------------------------
    def item_embeddings(self) -> np.ndarray:
        """``[n_items, dim]`` float32, row i = catalog item i."""
        if self._item_emb is None:
            with torch.inference_mode():
                idx = torch.arange(1, len(self.catalog) + 1)
                self._item_emb = self.model.item_tower(idx).numpy().astype(np.float32)
        return self._item_emb

    def embed_users(self, states: list[UserState], batch_size: int = 2048) -> np.ndarray:
        """``[len(states), dim]`` float32 user vectors (through the memo when one is enabled)."""
        if self._memo is not None and states:
            return self._embed_memo(states)
        out = [self._run_tower(self.encode_states(states[a:a + batch_size])) for a in range(0, len(states), batch_size)]
        return np.vstack(out).astype(np.float32) if out else np.zeros((0, self.model.cfg.dim), np.float32)

    def _inputs_table(self) -> torch.Tensor:
        """The item input table the user tower reads, computed once (the model is frozen here)."""
        if self._item_inputs is None:
            with torch.inference_mode():
                self._item_inputs = self.model.item_inputs()
        return self._item_inputs

    def _run_tower(self, x: tuple[torch.Tensor, ...]) -> np.ndarray:
        """User vectors of encoded inputs: the traced tower when there is one, else the eager module."""
        inputs = self._inputs_table()
        with torch.inference_mode():
            return (self._traced(*x) if self._traced is not None else self.model.user_tower(*x, inputs)).numpy()

    def weights_changed(self) -> None:
        """Drop everything derived from the weights (item embeddings, the item input table, the
        trace, the memo of user vectors): training calls this after every update it evaluates."""
        self._item_emb = self._item_inputs = self._traced = self._memo = None
        self._memo_capacity = 0

    @property
    def backend(self) -> str:
        """How the user tower runs: ``torchscript`` after :meth:`trace_user_tower`, else ``eager``."""
        return "torchscript" if self._traced is not None else "eager"

    @property
    def memo_size(self) -> int:
        """User vectors held by the memo (0 when :meth:`enable_memo` was not called)."""
        return len(self._memo or {})

    # ---- serving: memo of user vectors ----------------------------------------------------
    def enable_memo(self, states: list[UserState], capacity: int = 100_000) -> int:
        """Serving: remember user vectors by the user tower's exact inputs (encoded history, user
        index, demographics), filled now with ``states`` (the bundle's users, at most
        ``capacity``) one at a time, as a request would compute them. A request whose inputs
        match reuses the vector; any other (an event appended to the history, a session, an
        unknown user) runs the tower and is remembered too, oldest entries dropped beyond
        ``capacity``. Returns the number of entries."""
        self._memo, self._memo_capacity = {}, max(1, int(capacity))
        for s in states[: self._memo_capacity]:
            self._embed_memo([s])
        return len(self._memo)

    def _embed_memo(self, states: list[UserState]) -> np.ndarray:
        hist, users, demo = self.encode_states(states)
        h, u, d = hist.numpy(), users.numpy(), demo.numpy()
        keys = [h[i].tobytes() + u[i].tobytes() + d[i].tobytes() for i in range(len(states))]
        out = np.empty((len(states), self.model.cfg.dim), np.float32)
        miss = []
        for i, key in enumerate(keys):
            vec = self._memo.get(key)
            if vec is None:
                miss.append(i)
            else:
                out[i] = vec
        self.memo_hits += len(states) - len(miss)
        self.memo_misses += len(miss)
        if miss:
            sel = torch.as_tensor(miss)
            vecs = self._run_tower((hist[sel], users[sel], demo[sel]))
            for j, i in enumerate(miss):
                out[i] = vecs[j]
                if len(self._memo) >= self._memo_capacity:
                    self._memo.pop(next(iter(self._memo)))
                self._memo[keys[i]] = vecs[j].astype(np.float32, copy=True)
        return out

    def trace_user_tower(self, probe: list[UserState], atol: float = 1e-5) -> None:
        """Serving: run the user tower as a TorchScript trace from now on (the same ops with less
        Python per call, ~2x faster for one user), after checking it embeds ``probe`` (plus a
        user with no history) like the eager module. Raises when it does not."""
        empty = UserState(user_id=-1)
        states = list(probe) + [empty]
        inputs = self._inputs_table()
        with torch.inference_mode(), warnings.catch_warnings():
            # torch.jit.trace is marked deprecated in favour of torch.compile/export, which need a
            # C++ toolchain at start-up or give no speed-up for one user; the check below guards it.
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(_UserTower(self.model, inputs).eval(), self.encode_states(states[:1]), check_trace=False)
            x = self.encode_states(states)
            diff = float((traced(*x) - self.model.user_tower(*x, inputs)).abs().max())
        if not diff <= atol:
            raise RuntimeError(f"traced user tower disagrees with the eager one (max |diff| {diff:g})")
        self._traced = traced

    # ---- persistence -------------------------------------------------------------------
    def save(self, out_dir: Path) -> list[str]:
        out_dir = Path(out_dir)
        torch.save(self.model.state_dict(), out_dir / "user_tower.pt")
        (out_dir / "two_tower.json").write_text(json.dumps(asdict(self.model.cfg), indent=2))
        np.save(out_dir / "user_ids.npy", self.user_ids)
        np.save(out_dir / "item_embeddings.npy", self.item_embeddings())
        return ["user_tower.pt", "two_tower.json", "user_ids.npy", "item_embeddings.npy"]

    @classmethod
    def load(cls, in_dir: Path, catalog: Catalog) -> "TwoTower":
        in_dir = Path(in_dir)
        cfg = TwoTowerConfig(**json.loads((in_dir / "two_tower.json").read_text()))
        if cfg.n_items != len(catalog):
            raise ValueError(f"{in_dir}: two-tower was trained on {cfg.n_items} items, catalog has {len(catalog)}")
        model = TwoTowerModel(cfg, catalog.genres, year_bucket(catalog.year))
        model.load_state_dict(torch.load(in_dir / "user_tower.pt", weights_only=True, map_location="cpu"))
        tt = cls(model, catalog, np.load(in_dir / "user_ids.npy"))
        tt._item_emb = np.load(in_dir / "item_embeddings.npy")
        return tt


# ---- training ----------------------------------------------------------------------------
def _sequences(train: pd.DataFrame, catalog: Catalog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened item indices in canonical order, each row's user and its user's start offset."""
    ordered = train.sort_values(["user_id", "timestamp", "item_id"], kind="mergesort")
    idx = np.searchsorted(catalog.item_ids, ordered["item_id"].to_numpy())
    users = ordered["user_id"].to_numpy(np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
    lengths = np.diff(np.r_[starts, len(users)])
    start_of = np.repeat(starts, lengths)
    return idx.astype(np.int64), users, start_of


def train_two_tower(
    train: pd.DataFrame,
    catalog: Catalog,
    user_table: pd.DataFrame,
    settings,
    validation: tuple[list[UserState], dict[int, set[int]]] | None = None,
    epochs: int | None = None,
    progress: bool = True,
) -> tuple[TwoTower, dict]:
    """Fit the towers on ``train``; early-stop on validation recall@100 when ``validation``.

    ``validation`` is (user states at the end of train, held-out movie ids per user). Without
    it the model trains for exactly ``epochs`` (default ``settings.tt_epochs``).
    Returns the model (best epoch) and a history dict.
    """
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    user_ids = np.sort(user_table["user_id"].to_numpy(np.int64))
    cfg = TwoTowerConfig(n_items=len(catalog), n_users=len(user_ids), dim=settings.embedding_dim,
                         history_len=settings.history_len, dropout=settings.tt_dropout)
    model = TwoTowerModel(cfg, catalog.genres, year_bucket(catalog.year))
    tt = TwoTower(model, catalog, user_ids)
    states = {int(r["user_id"]): UserState.from_row(r) for r in user_table.to_dict("records")}

    flat, users, start_of = _sequences(train, catalog)
    examples = np.flatnonzero(np.arange(len(flat)) > start_of)  # positions with >= 1 previous item
    u_index = np.array([tt._user_index.get(int(u), 0) for u in users], dtype=np.int64)
    demo_rows = tt.encode_states([states.get(int(u), UserState(user_id=int(u))) for u in user_ids])[2]
    demo_of = {int(u): demo_rows[i] for i, u in enumerate(user_ids)}
    demo_all = torch.stack([demo_of.get(int(u), torch.zeros(3, dtype=torch.int64)) for u in users]) if len(users) else torch.zeros((0, 3), dtype=torch.int64)
    target_freq = np.bincount(flat[examples], minlength=len(catalog)).astype(np.float64) + 1.0
    log_q = torch.from_numpy(np.log(target_freq / target_freq.sum()).astype(np.float32))

    opt = torch.optim.AdamW(model.parameters(), lr=settings.tt_learning_rate, weight_decay=settings.tt_weight_decay)
    n = cfg.history_len
    offsets = np.arange(-n, 0)
    max_epochs = epochs or settings.tt_epochs
    best = (-1.0, 0, copy.deepcopy(model.state_dict()))
    history: dict = {"epochs": [], "val_recall@100": [], "loss": []}
    bad = 0
    t0 = time.perf_counter()
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = rng.permutation(examples)
        bs = settings.tt_batch_size
        losses = []
        bar = tqdm(range(0, len(order), bs), desc=f"two-tower epoch {epoch}/{max_epochs}", disable=not progress, leave=False, mininterval=1.0)
        for a in bar:
            pos = order[a:a + bs]
            gather = pos[:, None] + offsets[None, :]
            valid = gather >= start_of[pos][:, None]
            hist = np.where(valid, flat[np.maximum(gather, 0)] + 1, 0)
            user = u_index[pos].copy()
            user[rng.random(len(pos)) < 0.2] = 0  # user-id dropout: robust to unknown users
            target = torch.from_numpy(flat[pos])
            inputs = model.item_inputs()
            u = model.user_tower(torch.from_numpy(hist), torch.from_numpy(user), demo_all[pos], inputs)
            v = model.item_tower(target + 1, inputs)
            logits = (u @ v.T) / settings.tt_temperature - log_q[target][None, :]
            dup = (target[:, None] == target[None, :]) & ~torch.eye(len(pos), dtype=torch.bool)
            logits = logits.masked_fill(dup, float("-inf"))
            loss = F.cross_entropy(logits, torch.arange(len(pos)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if len(losses) % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        tt.weights_changed()
        model.eval()
        history["epochs"].append(epoch)
        history["loss"].append(float(np.mean(losses)) if losses else 0.0)
        if validation is None:
            best = (0.0, epoch, copy.deepcopy(model.state_dict()))
            log.info("two-tower epoch %d loss %.4f", epoch, history["loss"][-1])
            continue
        rec = validation_recall(tt, *validation, k=100)
        history["val_recall@100"].append(rec)
        log.info("two-tower epoch %d loss %.4f val recall@100 %.4f", epoch, history["loss"][-1], rec)
        if progress:
            tqdm.write(f"two-tower epoch {epoch}: loss {history['loss'][-1]:.4f}  val recall@100 {rec:.4f}")
        if rec > best[0]:
            best, bad = (rec, epoch, copy.deepcopy(model.state_dict())), 0
        else:
            bad += 1
            if bad >= settings.tt_patience:
                break
    model.load_state_dict(best[2])
    model.eval()
    tt.weights_changed()
    history.update(best_epoch=best[1], best_val_recall=best[0], seconds=time.perf_counter() - t0, examples=int(len(examples)))
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
