"""Models: the two-stage recommender's parts and the baselines, behind one contract.

* :mod:`~recsys.models.base`             the :class:`~recsys.models.base.Recommender` contract
* :mod:`~recsys.models.two_tower`        retrieval: the two-tower model (PyTorch)
* :mod:`~recsys.models.index`            its FAISS index (nprobe tuned to a recall target)
* :mod:`~recsys.models.cooc`             the next-item co-occurrence channel
* :mod:`~recsys.models.ranker_features`  the ranker's inputs; :mod:`~recsys.models.ranker` LambdaMART
* :mod:`~recsys.models.recommender`      the two stages composed (:class:`TwoStageRecommender`)
* :mod:`~recsys.models.baselines`        popularity, EASE, iALS
* :mod:`~recsys.models.sasrec`           SASRec, the sequential baseline (fit on the levels: recsys.training.sasrec)
"""
