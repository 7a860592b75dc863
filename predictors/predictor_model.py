"""The predictor: a kserve.Model holding one model version (user tower, FAISS, ranker, item and
user tables) and answering V2 recommend requests (see docs/serving.md)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import orjson
from kserve import Model
from kserve.errors import InvalidInput, ModelMissingError
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from predictors import server_metrics as m
from predictors.engine import Engine
from predictors.protocol import (
    FEATURES_INPUT,
    RECOMMENDER_INPUTS,
    RECOMMENDER_OUTPUTS,
    Limits,
    build_response,
    parse_recommend,
)

log = logging.getLogger(__name__)


def model_info(bundle_dir: str | Path) -> dict:
    """Model-info output: version, index stats, top-10 ranker features by gain (from the bundle files)."""
    p = Path(bundle_dir)
    manifest = orjson.loads((p / "manifest.json").read_bytes())
    gain = (
        orjson.loads((p / "ranker.json").read_bytes()).get("importance_gain", {})
        if (p / "ranker.json").exists()
        else {}
    )
    top = sorted(gain.items(), key=lambda kv: -kv[1])[:10]
    return {
        "model_version": manifest["version"],
        "index": manifest.get("index", {}),
        "top_features_gain": [[n, float(v)] for n, v in top],
        "serving": manifest.get("serving", {}),
        "n_items": manifest.get("n_items"),
        "n_users": manifest.get("n_users"),
        "metrics": manifest.get("metrics", {}),
    }


def check_bundle_dir(model_dir: str | Path | None) -> Path:
    if not model_dir or not (Path(model_dir) / "manifest.json").is_file():
        raise ModelMissingError(f"{model_dir}: no model bundle (manifest.json) there")
    return Path(model_dir)


class RecommenderPredictor(Model):
    """User tower -> FAISS -> channels -> ranker -> MMR -> top-k, seen items removed."""

    def __init__(self, name: str, model_dir: str | Path | None, ranker_threads: int = 1, mmr_lambda: float = 1.0,
                 limits: Limits | None = None):
        super().__init__(name)
        self.model_dir = model_dir
        self.ranker_threads = ranker_threads
        self.mmr_lambda = mmr_lambda
        self.limits = limits or Limits()
        self.engine: Engine | None = None

    def load(self) -> bool:
        path = check_bundle_dir(self.model_dir)
        self.engine = Engine.from_dir(path, ranker_threads=self.ranker_threads, mmr_lambda=self.mmr_lambda)
        self.engine.warmup()
        m.set_model_info(self.engine.version, "predictor")
        log.info("predictor: loaded model version %s from %s", self.engine.version, path)
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict]:
        return RECOMMENDER_INPUTS + [FEATURES_INPUT]

    def get_output_types(self) -> list[dict]:
        return RECOMMENDER_OUTPUTS

    async def predict(
        self, payload: InferRequest, headers: dict | None = None, response_headers: dict | None = None
    ) -> InferResponse:
        t0 = time.perf_counter()
        m.REQUESTS.labels("predictor", "recommender").inc()
        try:
            req = parse_recommend(payload, allow_features=True, limits=self.limits)
        except InvalidInput:
            m.ERRORS.labels("predictor", "bad_request").inc()
            raise
        try:
            result = self.engine.recommend(req)
            resp = build_response(self.name, req.request_id, result, req.k, self.engine.titles)
        except Exception:
            m.ERRORS.labels("predictor", "internal").inc()
            raise
        m.observe_stage("predictor", "retrieval", result.timings["retrieval"])
        m.observe_stage("predictor", "ranking", result.timings["ranking"])
        if result.params.get("fallback"):
            m.FALLBACKS.labels("predictor", "cold_start").inc()
        m.observe_stage("predictor", "end_to_end", (time.perf_counter() - t0) * 1e3)
        return resp


class InfoModel(Model):
    """``<name>-info``: V2 infer (any input) -> output ``info`` BYTES [1], the model-info JSON."""

    def __init__(self, name: str, model_dir: str | Path | None, engine: Engine | None = None):
        super().__init__(name)
        self.model_dir = model_dir
        self.engine = engine  # the predictor's: adds how it runs the models (ranker/user-tower backends)
        self.info: dict = {}

    def load(self) -> bool:
        self.info = model_info(check_bundle_dir(self.model_dir))
        if self.engine is not None:
            self.info["serving"] = self.engine.info()["serving"]
        self.ready = True
        return True

    def get_input_types(self) -> list[dict]:
        return [{"name": "any", "datatype": "BOOL", "shape": [-1], "optional": True}]

    def get_output_types(self) -> list[dict]:
        return [{"name": "info", "datatype": "BYTES", "shape": [1]}]

    async def predict(
        self, payload: InferRequest, headers: dict | None = None, response_headers: dict | None = None
    ) -> InferResponse:
        out = InferOutput("info", [1], "BYTES", data=[orjson.dumps(self.info).decode()])
        return InferResponse(
            response_id=str(getattr(payload, "id", None) or "info"),
            model_name=self.name,
            infer_outputs=[out],
            parameters={"model_version": self.info["model_version"]},
        )
