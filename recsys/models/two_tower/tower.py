"""A trained two-tower model at inference time: user and item vectors for a catalog.

Besides embedding users (:meth:`TwoTower.embed_users`) it carries the serving speed-ups that
keep the answers: a TorchScript trace of the user tower and a memo of user vectors keyed by the
tower's exact inputs, each switched on by the servers and checked against the eager module.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from recsys.features.catalog import Catalog
from recsys.features.users import UserState, demographic_codes
from recsys.models.two_tower.network import N_OCCUPATIONS, TwoTowerConfig, TwoTowerModel, UserTowerModule, year_bucket

Encoded = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # history indices + 1, user index, demographic codes


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

    def user_index(self, user_id: int) -> int:
        """The user's row of the user-embedding table; 0 (the unknown user) when not trained on."""
        return self._user_index.get(int(user_id), 0)

    # ---- inputs ------------------------------------------------------------------------
    def encode_states(self, states: list[UserState]) -> Encoded:
        """The user tower's inputs: left-padded history indices + 1 [B, N], user index [B],
        demographic codes [B, 3]."""
        n = self.history_len
        hist = np.zeros((len(states), n), dtype=np.int64)
        users = np.zeros(len(states), dtype=np.int64)
        demo = np.zeros((len(states), 3), dtype=np.int64)
        for row, s in enumerate(states):
            idx = self.catalog.indices(s.recent_items)[-n:] + 1
            if idx.size:
                hist[row, n - idx.size:] = idx
            users[row] = self._user_index.get(int(s.user_id), 0)
            gender, age, occupation = demographic_codes(s)
            demo[row] = (gender, age, min(max(occupation, 0), N_OCCUPATIONS))
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

    def _run_tower(self, x: Encoded) -> np.ndarray:
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
        memo = self._memo
        assert memo is not None, "enable_memo first"
        hist, users, demo = self.encode_states(states)
        h, u, d = hist.numpy(), users.numpy(), demo.numpy()
        keys = [h[i].tobytes() + u[i].tobytes() + d[i].tobytes() for i in range(len(states))]
        out = np.empty((len(states), self.model.cfg.dim), np.float32)
        miss = []
        for i, key in enumerate(keys):
            vec = memo.get(key)
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
                if len(memo) >= self._memo_capacity:
                    memo.pop(next(iter(memo)))
                memo[keys[i]] = vecs[j].astype(np.float32, copy=True)
        return out

    def trace_user_tower(self, probe: list[UserState], atol: float = 1e-5) -> None:
        """Serving: run the user tower as a TorchScript trace from now on (the same ops with less
        Python per call), after checking it embeds ``probe`` (plus a
        user with no history) like the eager module. Raises when it does not."""
        empty = UserState(user_id=-1)
        states = list(probe) + [empty]
        inputs = self._inputs_table()
        with torch.inference_mode(), warnings.catch_warnings():
            # torch.jit.trace is marked deprecated in favour of torch.compile/export, which need a
            # C++ toolchain at start-up or give no speed-up for one user; the check below guards it.
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(
                UserTowerModule(self.model, inputs).eval(), self.encode_states(states[:1]), check_trace=False
            )
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
    def load(cls, in_dir: Path, catalog: Catalog) -> TwoTower:
        in_dir = Path(in_dir)
        cfg = TwoTowerConfig(**json.loads((in_dir / "two_tower.json").read_text()))
        if cfg.n_items != len(catalog):
            raise ValueError(f"{in_dir}: two-tower was trained on {cfg.n_items} items, catalog has {len(catalog)}")
        model = TwoTowerModel(cfg, catalog.genres, year_bucket(catalog.year))
        model.load_state_dict(torch.load(in_dir / "user_tower.pt", weights_only=True, map_location="cpu"))
        tt = cls(model, catalog, np.load(in_dir / "user_ids.npy"))
        tt._item_emb = np.load(in_dir / "item_embeddings.npy")
        return tt
