"""Evaluation: ranking metrics, the harness every model goes through, the quality benchmark.

* :mod:`~recsys.evaluation.metrics`    pure metric functions (definitions in the docstrings)
* :mod:`~recsys.evaluation.harness`    full-catalog ranking of every model on one level's labels
* :mod:`~recsys.evaluation.benchmark`  ``make benchmark-quality``: every protocol, reports
* :mod:`~recsys.evaluation.report`     the benchmark's markdown tables and plots
"""
