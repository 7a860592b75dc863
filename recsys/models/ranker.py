"""Second stage: the LightGBM LambdaMART ranker over :data:`recsys.models.ranker_features.FEATURES`.

Training (:func:`fit_ranker`, early stopping on validation NDCG@10), persistence (LightGBM's
text model) and, for serving, the same trees compiled to a shared library (:class:`CompiledTrees`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np

from recsys.models.ranker_features import CATEGORICAL, FEATURES

if TYPE_CHECKING:
    from recsys.config import Settings

log = logging.getLogger(__name__)


@dataclass
class RankerTable:
    """A LambdaMART table: features ``x`` [rows, FEATURES], binary labels ``y``, query ``groups``
    (rows per user, only users with a positive), and the share of labels the candidates held."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    candidate_recall: float = 0.0

    @classmethod
    def empty(cls) -> RankerTable:
        return cls(np.zeros((0, len(FEATURES)), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def _early_stopping_on(metric: str, rounds: int):
    """Stop when validation ``metric`` has not improved for ``rounds`` iterations.

    LightGBM's own callback stops on the first metric (ndcg@5) or on any of them; the gate and
    the report use NDCG@10, so that is the one that decides.
    """
    best_score, best_iter = -np.inf, 0

    def _callback(env: Any) -> None:
        nonlocal best_score, best_iter
        score = next(v for _, name, v, _ in env.evaluation_result_list if name == metric)
        if score > best_score:
            best_score, best_iter = score, env.iteration
        elif env.iteration - best_iter >= rounds:
            raise lgb.callback.EarlyStopException(best_iter, env.evaluation_result_list)
        if env.iteration + 1 == env.end_iteration:
            raise lgb.callback.EarlyStopException(best_iter, env.evaluation_result_list)

    _callback.order = 30  # type: ignore[attr-defined]  # LightGBM runs callbacks by this attribute
    return _callback


class CompiledTrees:
    """A LightGBM model's trees compiled to a shared library (treelite import, tl2cgen codegen,
    the machine's C compiler). Same decisions, faster than ``Booster.predict`` on a few hundred
    rows (docs/serving.md has the measurement); libraries are cached by model text and toolchain version."""

    def __init__(self, lib: Path, nthread: int = 1):
        import tl2cgen

        self.lib = Path(lib)
        self._tl2cgen = tl2cgen
        self._predictor = tl2cgen.Predictor(str(lib), nthread=max(1, nthread))

    @classmethod
    def build(cls, booster: lgb.Booster, cache_dir: str | Path, nthread: int = 1) -> CompiledTrees:
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
            tl2cgen.export_lib(
                model, toolchain="gcc", libpath=str(tmp), params={"parallel_comp": 4}, nthread=2, verbose=False
            )
            os.replace(tmp, lib)  # atomic: concurrent loaders see a whole library or none
        return cls(lib, nthread)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._predictor.predict(self._tl2cgen.DMatrix(np.ascontiguousarray(x))), np.float64).reshape(
            -1
        )


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
        return np.asarray(self.booster.predict(x, num_threads=num_threads))

    def use_compiled(self, cache_dir: str | Path, probe: np.ndarray, nthread: int = 1, atol: float = 1e-6) -> None:
        """Compile the trees and predict with them from now on, after checking that they score
        ``probe`` (rows of real features) like LightGBM does. Raises when they do not (or when
        there is no compiler): the caller decides whether to carry on with LightGBM."""
        compiled = CompiledTrees.build(self.booster, cache_dir, nthread)
        want = np.asarray(self.booster.predict(probe, num_threads=1))
        got = compiled.predict(probe)
        diff = float(np.max(np.abs(want - got))) if probe.shape[0] else 0.0
        if got.shape != want.shape or not diff <= atol:
            raise RuntimeError(
                f"compiled ranker disagrees with LightGBM on {probe.shape[0]} probe rows (max |diff| {diff:g})"
            )
        self.compiled = compiled

    def top_features(self, n: int = 10) -> list[tuple[str, float]]:
        return sorted(self.importance.items(), key=lambda kv: -kv[1])[:n]

    def save(self, out_dir: Path) -> list[str]:
        self.booster.save_model(str(Path(out_dir) / "ranker.txt"))
        (Path(out_dir) / "ranker.json").write_text(
            json.dumps({"importance_gain": self.importance, **self.info}, indent=2)
        )
        return ["ranker.txt", "ranker.json"]

    @classmethod
    def load(cls, in_dir: Path) -> Ranker:
        booster = lgb.Booster(model_file=str(Path(in_dir) / "ranker.txt"))
        meta = json.loads((Path(in_dir) / "ranker.json").read_text())
        imp = meta.pop("importance_gain")
        return cls(booster, imp, meta)


def fit_ranker(train: RankerTable, valid: RankerTable, settings: Settings) -> Ranker:
    """Fit LambdaMART on ``train``; early-stop on ``valid`` NDCG@10.

    ``valid`` must come from labels later in time than ``train``'s (see recsys.training.levels).
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
    dtrain = lgb.Dataset(train.x, train.y, group=train.groups, feature_name=list(FEATURES), categorical_feature=cat,
                         free_raw_data=False)
    dvalid = lgb.Dataset(valid.x, valid.y, group=valid.groups, reference=dtrain, categorical_feature=cat)
    evals: dict = {}
    booster = lgb.train(
        params, dtrain, num_boost_round=settings.lgbm_n_estimators, valid_sets=[dvalid], valid_names=["valid"],
        callbacks=[_early_stopping_on("ndcg@10", settings.lgbm_early_stopping_rounds), lgb.record_evaluation(evals)],
    )
    booster.best_score = {"valid": {m: v[booster.best_iteration - 1] for m, v in evals["valid"].items()}}
    info = {
        "best_iteration": booster.best_iteration,
        "valid_ndcg@10": float(booster.best_score["valid"]["ndcg@10"]),
        "train_rows": int(train.x.shape[0]), "train_groups": int(len(train.groups)),
        "valid_rows": int(valid.x.shape[0]), "valid_groups": int(len(valid.groups)),
        "params": {k: v for k, v in params.items() if k != "num_threads"},
    }
    if booster.best_iteration:
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    return Ranker(booster, info=info)
