"""Event types and ranks as training weights and graded labels; ratings alone train as before."""

import numpy as np
import pandas as pd

from recsys.features.weights import relevance_grades, sample_weights


def test_ratings_alone_are_unweighted_and_binary():
    df = pd.DataFrame({"event_type": ["rating"] * 3, "position": pd.array([pd.NA] * 3, "Int64")})
    assert sample_weights(df) is None and sample_weights(df.drop(columns=["event_type"])) is None
    assert relevance_grades(df).tolist() == [1, 1, 1]


def test_types_progress_and_positions():
    df = pd.DataFrame({"event_type": ["view", "click", "watch", "purchase", "rating"],
                       "progress": [np.nan, np.nan, 1.0, np.nan, np.nan],
                       "position": pd.array([pd.NA, 3, pd.NA, 99, 0], "Int64")})
    w = sample_weights(df)
    np.testing.assert_allclose(w, [0.25, 0.5 * 2.0, 1.0, 5.0, 1.0])  # sqrt(1 + 3) = 2; rank 99 capped at 5
    assert relevance_grades(df).tolist() == [1, 1, 2, 2, 1]
