"""Features as code: the Feast definitions of the recommender (entities, sources, views, service).

Training builds the same columns with :mod:`recsys.features` (``users.build_user_table`` /
``build_item_table``); the materialize step writes those tables as the parquet files these
sources read, so the online store holds exactly what the model was trained on.

``definitions(data_dir)`` builds every object for offline parquet under ``data_dir``;
:func:`recsys.online.feature_store.get_store` applies it with the directory of its environment. The
module-level objects (default ``feature_repo/data/``) are what ``feast apply`` in this folder
sees.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Float32, Int64, String

DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data"
USERS_FILE = "users.parquet"
ITEMS_FILE = "items.parquet"
TRENDING_FILE = "item_trending.parquet"
TIMESTAMP = "event_timestamp"
# Online values never expire: a user's row is replaced by the next materialization or event.
TTL = timedelta(days=365 * 100)

# Column -> Feast type. Must stay equal to recsys.features.users.USER_FEATURES (tested).
USER_SCHEMA = {
    # demographics
    "gender": String, "age": Int64, "occupation": Int64,
    # activity statistics
    "n_ratings": Int64, "mean_rating": Float32, "first_ts": Int64, "last_ts": Int64,
    # tastes: share of the user's ratings per ml-1m genre (18, GENRES order)
    "genre_affinity": Array(Float32),
    # history: last HISTORY_LEN movie ids (most recent last) and every rated movie id
    "recent_items": Array(Int64), "seen_items": Array(Int64),
}
# Columns of recsys.features.items.build_item_table (the catalog).
ITEM_SCHEMA = {
    "title": String, "genres": String, "year": Int64,
    "popularity": Int64, "popularity_recent": Int64, "first_ts": Int64, "last_ts": Int64,
    "mean_rating": Float32,
}


# Streaming item features: interactions with the item in the last 5 minutes / hour, kept by the
# stream consumer (recsys.online.consumer), read by the predictor's ranker
# (recsys.features.trending has the one definition).
TRENDING_SCHEMA = {"trend_5m": Int64, "trend_1h": Int64}


def definitions(data_dir: str | Path = DEFAULT_DATA_DIR, archive_dir: str | Path | None = None) -> list:
    """Every Feast object of the repo, with offline sources under ``data_dir`` (and the event
    archive's date-partitioned parquet as the ``events`` source when ``archive_dir`` is given)."""
    data_dir = Path(data_dir)
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64, description="MovieLens user id")
    item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.INT64, description="MovieLens movie id")
    user_source = FileSource(name="user_features_source", path=str(data_dir / USERS_FILE), timestamp_field=TIMESTAMP)
    item_source = FileSource(name="item_features_source", path=str(data_dir / ITEMS_FILE), timestamp_field=TIMESTAMP)
    user_features = FeatureView(
        name="user_features", entities=[user], ttl=TTL, source=user_source, online=True,
        schema=[Field(name="user_id", dtype=Int64)] + [Field(name=n, dtype=t) for n, t in USER_SCHEMA.items()],
        description="User demographics, activity statistics, genre affinities and recent history",
    )
    item_features = FeatureView(
        name="item_features", entities=[item], ttl=TTL, source=item_source, online=True,
        schema=[Field(name="item_id", dtype=Int64)] + [Field(name=n, dtype=t) for n, t in ITEM_SCHEMA.items()],
        description="Item popularity, recency, genres, year and title",
    )
    trending_source = FileSource(name="item_trending_source", path=str(data_dir / TRENDING_FILE),
                                 timestamp_field=TIMESTAMP)
    item_trending = FeatureView(
        name="item_trending", entities=[item], ttl=TTL, source=trending_source, online=True,
        schema=[Field(name="item_id", dtype=Int64)] + [Field(name=n, dtype=t) for n, t in TRENDING_SCHEMA.items()],
        description="Interactions with the item in the last 5 minutes and hour (stream consumer)",
    )
    service = FeatureService(name="recommender", features=[user_features, item_features, item_trending],
                             description="Features the two-stage recommender reads at serving time")
    objects = [user, item, user_source, item_source, trending_source, user_features, item_features, item_trending,
               service]
    if archive_dir is not None:
        objects.append(FileSource(name="events_source", path=str(archive_dir), timestamp_field=TIMESTAMP,
                                  description="Every logged feedback event (date-partitioned parquet)"))
    return objects


(user, item, user_source, item_source, item_trending_source, user_features, item_features, item_trending,
 recommender_service) = definitions()
