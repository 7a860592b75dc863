"""KFP components: one per pipeline step, each a thin shell over :mod:`recsys.steps`.

Every component runs on the project's image (the Dockerfile at the repository root); nothing
is installed at run time. ``RECSYS_IMAGE`` overrides the image when compiling.
Each component is also callable on its own: ``components.ingest.ingest.python_func(...)``
with ``dsl.Dataset(uri=<local dir>)`` artifacts (see tests/pipeline/test_components.py).
"""

import os

DEFAULT_IMAGE = "ghcr.io/example/movielens-recommender:0.1.0"
IMAGE = os.environ.get("RECSYS_IMAGE", DEFAULT_IMAGE)
