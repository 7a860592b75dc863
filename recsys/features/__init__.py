"""Features: one code path for training, the feature store and serving.

* :mod:`recsys.features.items`    the item table (catalog statistics) and genre encoding
* :mod:`recsys.features.users`    the user row contract (:class:`~recsys.features.users.UserState`),
  the user table, demographic encodings and :func:`~recsys.features.users.append_event`
* :mod:`recsys.features.catalog`  dense item indices and the item-side arrays models share
"""
