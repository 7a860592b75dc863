"""Per-user A/B experiments between model versions: the configuration and the assignment.

An experiment has an ``id`` and two or more ``arms``; an arm names a model version of the
registered model (an MLflow alias such as ``champion`` / ``challenger``, or a version number),
the predictor that serves it (``predictor_host``, its own InferenceService or process) and its
traffic ``share`` (the shares sum to 1). The first arm is the control.

A user's arm is a salted hash of (experiment id, user id): the same on every replica and
after restarts, independent across experiments, and shares are honoured within sampling error.

Configuration: ``AB_EXPERIMENT`` holds the JSON, or ``@/path/to/experiment.json``::

    {"id": "ranker-v7", "arms": [
        {"name": "control", "model": "champion", "predictor_host": "rec-champion-predictor:80", "share": 0.9},
        {"name": "treatment", "model": "challenger", "predictor_host": "rec-challenger-predictor:80", "share": 0.1}]}

Anything wrong (shares not summing to 1, duplicate names or hosts, an alias or version the
registry does not have) is an :class:`ExperimentError` at start, never a silent default.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recsys.online.events import ID_PATTERN

SHARE_TOLERANCE = 1e-6


class ExperimentError(ValueError):
    """The experiment configuration is unusable; the message says what and where."""


class Arm(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=ID_PATTERN)
    model: str = Field(min_length=1, description="MLflow alias (champion, challenger...) or version number")
    predictor_host: str = Field(min_length=1, description="host:port of the predictor serving this arm")
    share: float = Field(gt=0, le=1)


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    arms: tuple[Arm, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        total = sum(a.share for a in self.arms)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            shares = ", ".join(f"{a.name}={a.share:g}" for a in self.arms)
            raise ValueError(f"arms: shares sum to {total:g}, not 1 ({shares})")
        for what in ("name", "predictor_host"):
            values = [getattr(a, what) for a in self.arms]
            dup = sorted({v for v in values if values.count(v) > 1})
            if dup:
                raise ValueError(f"arms: duplicate {what} {dup}; each arm has its own")
        return self

    @property
    def control(self) -> Arm:
        return self.arms[0]

    def arm_names(self) -> list[str]:
        return [a.name for a in self.arms]

    def bucket(self, user_id: int) -> float:
        """The user's position in [0, 1): a salted hash, stable everywhere."""
        digest = hashlib.sha256(f"{self.id}:{int(user_id)}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def assign(self, user_id: int) -> Arm:
        x, edge = self.bucket(user_id), 0.0
        for arm in self.arms:
            edge += arm.share
            if x < edge:
                return arm
        return self.arms[-1]  # rounding at the top edge

    def fingerprint(self) -> str:
        """Changes whenever the assignment or the arms' models would (cache keys carry it)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]


def parse_experiment(raw: str | dict[str, Any]) -> Experiment:
    """An :class:`Experiment` from JSON (or ``@file``), or :class:`ExperimentError` naming the problem."""
    source = "AB_EXPERIMENT"
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("@"):
            source = text[1:]
            try:
                text = Path(source).read_text()
            except OSError as exc:
                raise ExperimentError(f"AB_EXPERIMENT: cannot read {source}: {exc}") from exc
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ExperimentError(f"{source}: not valid JSON ({exc})") from exc
    try:
        return Experiment.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ())) or "experiment"
        raise ExperimentError(f"{source}: {loc}: {first['msg']}") from exc


def resolve_arm_versions(exp: Experiment, settings: Any = None) -> dict[str, str]:
    """Each arm's model (alias or version) resolved in the registry -> model version number.
    An alias or version the registry lacks is an :class:`ExperimentError`."""
    from recsys.artifacts.registry import ModelNotFound, client, model_version

    out: dict[str, str] = {}
    for arm in exp.arms:
        try:
            if arm.model.isdigit():
                from recsys.config import get_settings

                s = settings or get_settings()
                mv = client(s).get_model_version(s.registered_model_name, arm.model)
            else:
                mv = model_version(arm.model, settings)
        except (ModelNotFound, Exception) as exc:  # noqa: BLE001 - MlflowException for an unknown version
            raise ExperimentError(f"AB_EXPERIMENT: arm {arm.name!r}: model {arm.model!r} is not in the registry "
                                  f"({exc})") from exc
        out[arm.name] = str(mv.version)
    return out
