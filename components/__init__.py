"""KFP components: one per pipeline step, each a thin shell over :mod:`recsys.training.steps`
(or the registry / feature-store functions of :mod:`recsys.artifacts` and :mod:`recsys.online`).

Every component runs on the project's image (the Dockerfile at the repository root); nothing
is installed at run time. ``RECSYS_IMAGE`` overrides the image when compiling.
Each component is also callable on its own: ``components.ingest.ingest.python_func(...)``
with ``dsl.Dataset(uri=<local dir>)`` artifacts (see tests/pipelines/pipetest.py).

The training steps take the model settings the pipeline exposes (``history_len``,
``embedding_dim``, ``top_k_candidates``, ``ranker_rounds``) as optional parameters: None keeps
the image's environment (:class:`recsys.config.Settings`), so every step sees the same values.

A component ships only its function's source: it imports what it uses inside the function,
this package included (``from components import setup_logging``: the image has /app on
PYTHONPATH, locally the project is installed in the venv).
"""

import os

DEFAULT_IMAGE = "ghcr.io/example/movielens-recommender:0.1.0"
IMAGE = os.environ.get("RECSYS_IMAGE", DEFAULT_IMAGE)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging() -> None:
    """The logging of a step (and of ``python -m pipelines``): level LOG_LEVEL
    (:attr:`recsys.config.Settings.log_level`, default INFO), one line per record on stderr."""
    import logging

    from recsys.config import get_settings

    logging.basicConfig(level=get_settings().log_level, format=LOG_FORMAT)
