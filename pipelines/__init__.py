"""KFP pipelines of the project (``training_pipeline``) and their CLI (``python -m pipelines``)."""
