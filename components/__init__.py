"""KFP components: one per pipeline step, each a thin shell over :mod:`recsys.training.steps`
(or the registry / feature-store functions of :mod:`recsys.artifacts` and :mod:`recsys.online`).

Every component runs on the project's image (the Dockerfile at the repository root); nothing
is installed at run time. ``RECSYS_IMAGE`` overrides the image when compiling.
Each component is also callable on its own: ``components.ingest.ingest.python_func(...)``
with ``dsl.Dataset(uri=<local dir>)`` artifacts (see tests/pipelines/pipetest.py).

The training steps take the model settings the pipeline exposes (``history_len``,
``embedding_dim``, ``top_k_candidates``, ``ranker_rounds``) as optional parameters: None keeps
the image's environment (:class:`recsys.config.Settings`), so every step sees the same values.
"""

import os

DEFAULT_IMAGE = "ghcr.io/example/movielens-recommender:0.1.0"
IMAGE = os.environ.get("RECSYS_IMAGE", DEFAULT_IMAGE)
