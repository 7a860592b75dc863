"""Names shared across the project (reports, registry, servers), defined once."""

PRIMARY_MODEL = "two_tower+ranker"  # the model the gate, the bundle and the reports are about
GATE_METRIC = "ndcg@10"  # the offline metric the registry gate compares
