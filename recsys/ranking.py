"""Second stage: ranker features for (user, candidate) pairs and the LightGBM LambdaMART model.

:func:`candidate_features` is the single definition of the ranker's inputs, used to build the
training table offline and to score candidates in the predictor, so the two cannot drift.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np

from recsys.catalog import Catalog
from recsys.features import AGES, DAY, UserState

log = logging.getLogger(__name__)

FEATURES: tuple[str, ...] = (
    # retrieval channels
    "tt_score", "tt_rank", "tt_gap", "cooc_score", "cooc_share", "cooc_rank", "cooc_last1", "prerank",
    # similarity of the candidate to the user's last items (two-tower item vectors, genres,
    # release year, movie id: ml-1m ids follow the order movies entered the catalog)
    "sim_last1", "sim_last5_max", "sim_last5_mean", "genre_jaccard_last1", "genre_jaccard_last5",
    "year_delta_last1", "id_delta_last1",
    # item
    "item_log_pop", "item_log_pop_recent", "item_days_since_last", "item_days_since_first",
    "item_mean_rating", "item_year", "item_age_years",
    # user x item
    "genre_affinity",
    # user
    "user_log_n", "user_mean_rating", "user_days_active", "user_n_recent", "gender", "age", "occupation",
)
CATEGORICAL = ("gender", "occupation")
YEAR_SECONDS = 365.25 * DAY


@dataclass
class Candidates:
    """Merged candidates of one user, with per-channel scores and ranks (0-based; absent = n)."""

    idx: np.ndarray  # catalog indices
    tt_score: np.ndarray
    tt_rank: np.ndarray
    cooc_score: np.ndarray
    cooc_rank: np.ndarray
    cooc_last1: np.ndarray
    prerank: np.ndarray  # reciprocal-rank fusion of the channels


def candidate_features(state: UserState, recent_idx: np.ndarray, cands: Candidates, catalog: Catalog, item_emb: np.ndarray) -> np.ndarray:
    """``[len(cands.idx), len(FEATURES)]`` float32 feature matrix, columns in FEATURES order."""
    c = cands.idx
    n = c.size
    emb_c = item_emb[c]
    g = catalog.genres[c]
    g_count = catalog.genre_count[c]
    last = recent_idx[-5:]
    if last.size:
        # [<=5, n] (rows = the user's last items): reductions over rows are contiguous and cheap.
        sims = item_emb[last] @ emb_c.T
        sim_last1, sim_max, sim_mean = sims[-1], sims.max(axis=0), sims.mean(axis=0)
        inter = catalog.genres[last] @ g.T
        union = catalog.genre_count[last][:, None] + g_count[None, :] - inter
        jac = inter / np.maximum(union, 1.0)
        jac_last1, jac_mean = jac[-1], jac.mean(axis=0)
        year_delta = (catalog.year[c] - catalog.year[last[-1]]).astype(np.float32)
        id_delta = (catalog.item_ids[c] - catalog.item_ids[last[-1]]).astype(np.float32)
    else:
        sim_last1 = sim_max = sim_mean = jac_last1 = jac_mean = np.zeros(n, np.float32)
        year_delta = id_delta = np.full(n, np.nan, np.float32)
    aff = (g @ np.asarray(state.genre_affinity, np.float32)) / np.maximum(g_count, 1.0)
    user_year = 1970 + state.last_ts / YEAR_SECONDS if state.last_ts else 1970 + catalog.ref_ts / YEAR_SECONDS
    year = catalog.year[c].astype(np.float32)
    top_tt = cands.tt_score.max() if n else 0.0
    top_cooc = cands.cooc_score.max() if n else 0.0
    cols = [
        cands.tt_score, cands.tt_rank, cands.tt_score - top_tt,
        cands.cooc_score, cands.cooc_score / top_cooc if top_cooc > 0 else np.zeros(n, np.float32),
        cands.cooc_rank, cands.cooc_last1, cands.prerank,
        sim_last1, sim_max, sim_mean, jac_last1, jac_mean, year_delta, id_delta,
        catalog.log_pop[c], catalog.log_pop_recent[c], catalog.days_since_last[c], catalog.days_since_first[c],
        catalog.mean_rating[c], year, np.where(year > 0, user_year - year, -1.0),
        aff,
    ]
    user = [
        np.log1p(state.n_ratings), state.mean_rating, (state.last_ts - state.first_ts) / DAY, len(state.recent_items),
        {"F": 1, "M": 2}.get(state.gender, 0), AGES.index(state.age) + 1 if state.age in AGES else 0, state.occupation,
    ]
    out = np.empty((n, len(FEATURES)), np.float32)
    for j, col in enumerate(cols):
        out[:, j] = col
    out[:, len(cols):] = np.asarray(user, np.float32)[None, :]
    return out


def _early_stopping_on(metric: str, rounds: int):
    """Stop when validation ``metric`` has not improved for ``rounds`` iterations.

    LightGBM's own callback stops on the first metric (ndcg@5) or on any of them; the gate and
    the report use NDCG@10, so that is the one that decides.
    """
    best = {"score": -np.inf, "iter": 0}

    def _callback(env) -> None:
        score = next(v for _, name, v, _ in env.evaluation_result_list if name == metric)
        if score > best["score"]:
            best.update(score=score, iter=env.iteration)
        elif env.iteration - best["iter"] >= rounds:
            raise lgb.callback.EarlyStopException(best["iter"], env.evaluation_result_list)
        if env.iteration + 1 == env.end_iteration:
            raise lgb.callback.EarlyStopException(best["iter"], env.evaluation_result_list)

    _callback.order = 30
    return _callback


class CompiledTrees:
    """A LightGBM model's trees compiled to a shared library (treelite import, tl2cgen codegen,
    the machine's C compiler). Same decisions, ~5x faster than ``Booster.predict`` on a few
    hundred rows (docs/serving.md); libraries are cached by model text and toolchain version."""

    def __init__(self, lib: Path, nthread: int = 1):
        import tl2cgen

        self.lib = Path(lib)
        self._tl2cgen = tl2cgen
        self._predictor = tl2cgen.Predictor(str(lib), nthread=max(1, nthread))

    @classmethod
    def build(cls, booster: lgb.Booster, cache_dir: str | Path, nthread: int = 1) -> "CompiledTrees":
        import tl2cgen
        import treelite

        text = booster.model_to_string()
        tag = f"{treelite.__version__}/{tl2cgen.__version__}/{platform.machine()}"
        key = hashlib.sha256((tag + "\n" + text).encode()).hexdigest()[:20]
        cache = Path(cache_dir)
        lib = cache / f"ranker-{key}.so"
        if not lib.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            tmp = cache / f".ranker-{key}.{os.getpid()}.so"
            log.info("compiling the ranker's %d trees to %s", booster.num_trees(), lib)
            model = treelite.frontend.from_lightgbm(booster)
            tl2cgen.export_lib(model, toolchain="gcc", libpath=str(tmp), params={"parallel_comp": 4}, nthread=2, verbose=False)
            os.replace(tmp, lib)  # atomic: concurrent loaders see a whole library or none
        return cls(lib, nthread)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._predictor.predict(self._tl2cgen.DMatrix(np.ascontiguousarray(x))), np.float64).reshape(-1)


class Ranker:
    """LightGBM LambdaMART over :data:`FEATURES`; saved as LightGBM's text model.

    ``predict`` uses LightGBM unless :meth:`use_compiled` switched it to compiled trees
    (serving does; training and offline evaluation always use LightGBM).
    """

    def __init__(self, booster: lgb.Booster, importance: dict[str, float] | None = None, info: dict | None = None):
        self.booster = booster
        self.importance = importance or dict(zip(booster.feature_name(), booster.feature_importance("gain").tolist()))
        self.info = info or {}
        self.compiled: CompiledTrees | None = None

    @property
    def backend(self) -> str:
        return "compiled" if self.compiled is not None else "lightgbm"

    def predict(self, x: np.ndarray, num_threads: int = 0) -> np.ndarray:
        if not x.shape[0]:
            return np.zeros(0)
        if self.compiled is not None:
            return self.compiled.predict(x)
        return self.booster.predict(x, num_threads=num_threads)

    def use_compiled(self, cache_dir: str | Path, probe: np.ndarray, nthread: int = 1, atol: float = 1e-6) -> None:
        """Compile the trees and predict with them from now on, after checking that they score
        ``probe`` (rows of real features) like LightGBM does. Raises when they do not (or when
        there is no compiler): the caller decides whether to carry on with LightGBM."""
        compiled = CompiledTrees.build(self.booster, cache_dir, nthread)
        want = self.booster.predict(probe, num_threads=1)
        got = compiled.predict(probe)
        diff = float(np.max(np.abs(want - got))) if probe.shape[0] else 0.0
        if got.shape != want.shape or not diff <= atol:
            raise RuntimeError(f"compiled ranker disagrees with LightGBM on {probe.shape[0]} probe rows (max |diff| {diff:g})")
        self.compiled = compiled

    def top_features(self, n: int = 10) -> list[tuple[str, float]]:
        return sorted(self.importance.items(), key=lambda kv: -kv[1])[:n]

    def save(self, out_dir: Path) -> list[str]:
        self.booster.save_model(str(Path(out_dir) / "ranker.txt"))
        (Path(out_dir) / "ranker.json").write_text(json.dumps({"importance_gain": self.importance, **self.info}, indent=2))
        return ["ranker.txt", "ranker.json"]

    @classmethod
    def load(cls, in_dir: Path) -> "Ranker":
        booster = lgb.Booster(model_file=str(Path(in_dir) / "ranker.txt"))
        meta = json.loads((Path(in_dir) / "ranker.json").read_text())
        imp = meta.pop("importance_gain")
        return cls(booster, imp, meta)


def fit_ranker(
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray, np.ndarray],
    settings,
) -> Ranker:
    """Fit LambdaMART on (features, labels, group sizes); early-stop on ``valid`` NDCG@10.

    ``valid`` must come from labels later in time than ``train``'s (see recsys.train).
    """
    params = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [5, 10, 20],
        "learning_rate": settings.lgbm_learning_rate,
        "num_leaves": settings.lgbm_num_leaves,
        "min_data_in_leaf": settings.lgbm_min_data_in_leaf,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambdarank_truncation_level": 30,
        "seed": settings.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": settings.lgbm_num_threads,
        "verbosity": -1,
    }
    cat = [FEATURES.index(c) for c in CATEGORICAL]
    dtrain = lgb.Dataset(train[0], train[1], group=train[2], feature_name=list(FEATURES), categorical_feature=cat, free_raw_data=False)
    dvalid = lgb.Dataset(valid[0], valid[1], group=valid[2], reference=dtrain, categorical_feature=cat)
    evals: dict = {}
    booster = lgb.train(
        params, dtrain, num_boost_round=settings.lgbm_n_estimators, valid_sets=[dvalid], valid_names=["valid"],
        callbacks=[_early_stopping_on("ndcg@10", settings.lgbm_early_stopping_rounds), lgb.record_evaluation(evals)],
    )
    booster.best_score = {"valid": {m: v[booster.best_iteration - 1] for m, v in evals["valid"].items()}}
    info = {
        "best_iteration": booster.best_iteration,
        "valid_ndcg@10": float(booster.best_score["valid"]["ndcg@10"]),
        "train_rows": int(train[0].shape[0]), "train_groups": int(len(train[2])),
        "valid_rows": int(valid[0].shape[0]), "valid_groups": int(len(valid[2])),
        "params": {k: v for k, v in params.items() if k != "num_threads"},
    }
    if booster.best_iteration:
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    return Ranker(booster, info=info)
