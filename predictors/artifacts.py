"""Where a server's model version comes from: a bundle directory, or MLflow by alias."""

from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)
MODEL_URI = re.compile(r"^models:/(?P<name>[^@/]+)@(?P<alias>[\w-]+)$")


def resolve_model_dir(model_dir: str | None, model_uri: str | None = None) -> str | None:
    """``model_dir`` if given; else resolve ``models:/<name>@<alias>`` through recsys.registry."""
    if model_dir:
        return model_dir
    if not model_uri:
        return None
    match = MODEL_URI.match(model_uri)
    if not match:
        raise ValueError(f"--model_uri: expected models:/<name>@<alias>, got {model_uri!r}")
    from recsys.config import get_settings
    from recsys.registry import resolve_bundle  # the pipeline's registry helper

    settings = get_settings().model_copy(update={"registered_model_name": match["name"]})
    path = resolve_bundle(alias=match["alias"], settings=settings)
    log.info("resolved %s to %s", model_uri, path)
    return str(Path(path))
