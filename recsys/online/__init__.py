"""Online: what connects a model version to live traffic.

* :mod:`~recsys.online.feature_store`  Feast: configuration per environment, materialization
* :mod:`~recsys.online.user_rows`      online user rows: reads, writes
* :mod:`~recsys.online.skew`           training-serving skew against the online store
"""
