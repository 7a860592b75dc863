"""Training: the stages of a training run and their two compositions.

* :mod:`~recsys.training.levels`  the three time-ordered levels of a split
* :mod:`~recsys.training.stages`  the units: towers, retrieval, ranker tables, ranker
* :mod:`~recsys.training.run`     the stages composed in memory (benchmark, tests)
* :mod:`~recsys.training.steps`   the same stages as file-based pipeline steps (KFP components)
* :mod:`~recsys.training.sasrec`  the SASRec baseline: early stopping on level 2, level-0 refit
"""
