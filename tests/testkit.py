"""Helpers shared by test modules (a unique module name: `conftest` is ambiguous across
test directories)."""


def fast_settings(**overrides):
    """Settings small enough for a test to train every model in seconds."""
    from recsys.config import Settings

    base = dict(
        embedding_dim=32, history_len=20, tt_epochs=4, tt_patience=2, tt_batch_size=256,
        top_k_candidates=100, faiss_n_lists=8, faiss_n_probe=2, cooc_candidates=50, rank_candidates=120,
        lgbm_n_estimators=60, lgbm_min_data_in_leaf=20, lgbm_early_stopping_rounds=15, torch_threads=2,
        ials_factors=16, ials_iterations=10,  # 300 users: 64 factors overfit
    )
    base.update(overrides)
    return Settings(**base)
