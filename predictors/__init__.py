"""KServe model servers for the two-stage recommender: a predictor (retrieval + ranking) and a
transformer (validation, online features, cache, fallbacks, feedback events) over the V2 protocol.

Thin shells around :mod:`recsys`; see docs/serving.md for the protocol.
"""
