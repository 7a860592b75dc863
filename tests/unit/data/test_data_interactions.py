"""A team's own interaction log (parquet or CSV) and the event archive merged into it."""

import numpy as np
import pandas as pd
import pytest

from recsys.data.interactions import EVENT_TYPES, load_data, merge_events
from recsys.data.movielens import DataFormatError


def _log(tmp_path, fmt="csv", **overrides):
    inter = pd.DataFrame({
        "user_id": [7, 7, 7, 9, 9],
        "item_id": [100, 200, 300, 100, 300],
        "timestamp": ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z",
                      "2024-01-01T12:00:00Z", "2024-01-05T00:00:00Z"],
        "event_type": ["click", "watch", "rating", None, "skip"],
        "rating": [None, None, 4, 5, None],
        "progress": [None, 0.9, None, None, None],
        "position": [0, 3, None, None, 1],
    })
    for k, v in overrides.items():
        inter[k] = v
    items = pd.DataFrame({"item_id": [100, 200, 300], "title": ["a", "b", "c"],
                          "genres": ["Drama", "", "Comedy|Drama"]})
    for name, df in (("interactions", inter), ("items", items)):
        if fmt == "parquet":
            df.to_parquet(tmp_path / f"{name}.parquet")
        else:
            df.to_csv(tmp_path / f"{name}.csv", index=False)
    return tmp_path


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_own_log_loads_with_types_defaults_and_dates(tmp_path, fmt):
    data = load_data(_log(tmp_path, fmt))
    inter = data.interactions
    assert inter["event_type"].tolist() == ["click", "watch", "rating", "rating", "skip"]  # rating given: rating
    assert inter["timestamp"].iloc[0] == 1704067200
    assert inter["position"].tolist()[:2] == [0, 3] and pd.isna(inter["position"].iloc[2])
    assert set(inter["event_type"]) <= set(EVENT_TYPES)
    assert sorted(data.users["user_id"]) == [7, 9] and (data.users["gender"] == "U").all()
    assert data.items["year"].tolist() == [0, 0, 0]
    assert len(data.fingerprint()) == 16


def test_grouplens_directory_is_recognised(synthetic_dir, movielens):
    assert load_data(synthetic_dir).interactions.equals(movielens.interactions)


@pytest.mark.parametrize(("column", "value", "message"), [
    ("user_id", [7, -1, 7, 9, 9], r"row 2, column 'user_id': expected a non-negative integer"),
    ("item_id", [100, 200, 999, 100, 300], r"row 3, column 'item_id': item id absent from items.csv"),
    ("event_type", ["click", "like", "rating", None, "skip"], r"row 2, column 'event_type': expected one of"),
    ("rating", [None, None, 9, 5, None], r"row 3, column 'rating': expected a number in \[1, 5\]"),
    ("timestamp", ["2024-01-01", "yesterday", "2024-01-03", "2024-01-04", "2024-01-05"], r"row 2, column 'timestamp'"),
])
def test_bad_rows_are_named_by_file_row_and_column(tmp_path, column, value, message):
    with pytest.raises(DataFormatError, match=message):
        load_data(_log(tmp_path, **{column: value}))


def test_missing_files_are_named(tmp_path):
    with pytest.raises(DataFormatError, match="interactions.parquet or interactions.csv missing"):
        load_data(tmp_path)
    with pytest.raises(DataFormatError, match="does not exist"):
        load_data(tmp_path / "nope")


def test_merge_events_adds_events_before_the_cut_off_once(movielens):
    from recsys.online.archive import events_frame
    from recsys.online.events import Event

    item = int(movielens.items["item_id"].iloc[0])
    t = int(movielens.interactions["timestamp"].max()) + 1
    events = events_frame([
        Event(event_id="a", user_id=1, item_id=item, event_type="watch", progress=0.5, timestamp=t, position=2),
        Event(event_id="a", user_id=1, item_id=item, event_type="watch", progress=0.5, timestamp=t, position=2),
        Event(event_id="b", user_id=10**6, item_id=item, event_type="rating", value=5, timestamp=t + 1),
        Event(event_id="c", user_id=1, item_id=10**9, event_type="click", timestamp=t + 2),  # unknown item
        Event(event_id="d", user_id=1, item_id=item, event_type="click", timestamp=t + 100),  # after the cut-off
    ])
    merged = merge_events(movielens, events, until=t + 50)
    added = merged.interactions.iloc[len(movielens.interactions):]
    assert added["event_type"].tolist() == ["watch", "rating"]
    assert added["progress"].iloc[0] == 0.5 and added["position"].iloc[0] == 2 and added["rating"].iloc[1] == 5
    base = merged.interactions.iloc[:len(movielens.interactions)]
    assert (base["event_type"] == "rating").all()
    np.testing.assert_array_equal(base["rating"].to_numpy(), movielens.interactions["rating"].to_numpy())
    assert 10**6 in set(merged.users["user_id"])
    assert merge_events(movielens, events, until=0) is movielens
