"""Core library of the recommender: data, features, models, evaluation, bundle.

Plain Python (no Kubernetes, no servers). KFP components (``components/``) and KServe
model servers (``predictors/``) import it, so training and serving share one code path.
"""

__version__ = "0.1.0"
