"""Artifacts: what a training run leaves behind.

* :mod:`~recsys.artifacts.bundle`    the model bundle (one directory per model version, sha256-checked)
* :mod:`~recsys.artifacts.registry`  MLflow: runs, model versions, the ``champion`` gate
* :mod:`~recsys.artifacts.locations` MLflow: the tracking store, the training experiment and its artifact location
"""
