"""The user row contract: table columns, the row round trip, one definition of an event."""

import pandas as pd

from recsys.features.users import USER_FEATURES, UserState, append_event, build_user_table, demographic_codes


def test_user_table_rows_are_user_states(movielens):
    table = build_user_table(movielens.users, movielens.interactions, history_len=7)
    assert list(table.columns) == ["user_id", *USER_FEATURES]
    row = table.to_dict("records")[0]
    state = UserState.from_row(row)
    assert len(state.recent_items) <= 7 and state.recent_items == state.seen_items[-len(state.recent_items):]
    assert UserState.from_row(state.to_row()) == state


def test_history_follows_the_canonical_order():
    users = pd.DataFrame({"user_id": [1], "gender": ["F"], "age": [25], "occupation": [3]})
    train = pd.DataFrame({"user_id": [1, 1, 1], "item_id": [30, 10, 20], "rating": [5, 3, 4],
                          "timestamp": [200, 100, 100]})
    row = build_user_table(users, train, history_len=2).iloc[0]
    assert list(row["seen_items"]) == [10, 20, 30] and list(row["recent_items"]) == [20, 30]
    assert row["first_ts"] == 100 and row["last_ts"] == 200 and row["n_ratings"] == 3


def test_append_event_to_a_known_and_an_unknown_user():
    before = UserState(user_id=5, recent_items=[1, 2, 3], seen_items=[1, 2, 3], n_ratings=3, first_ts=10, last_ts=50)
    after = append_event(before, 5, 9, 60, history_len=3)
    assert after.recent_items == [2, 3, 9] and after.seen_items == [1, 2, 3, 9]
    assert after.n_ratings == 4 and after.last_ts == 60 and after.first_ts == 10
    assert before.recent_items == [1, 2, 3] and before.n_ratings == 3  # pure: the input is unchanged
    again = append_event(after, 5, 2, 40, history_len=3)  # a seen item, an older timestamp
    assert again.recent_items == [3, 9, 2] and again.seen_items == [1, 2, 3, 9] and again.last_ts == 60
    new = append_event(None, 8, 4, 70, history_len=3)
    assert (new.user_id, new.recent_items, new.seen_items, new.n_ratings, new.first_ts, new.last_ts) == (8, [4], [4], 1,
                                                                                                          70, 70)


def test_demographic_codes():
    assert demographic_codes(UserState(gender="F", age=25, occupation=4)) == (1, 3, 4)
    assert demographic_codes(UserState(gender="M", age=1)) == (2, 1, 0)
    assert demographic_codes(UserState(gender="X", age=33)) == (0, 0, 0)
