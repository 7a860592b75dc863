"""The feedback event: one typed contract for the servers, the event log, the consumer, the
archive and training.

An event says a user did something with an item: ``view``, ``click``, ``add_to_list``,
``rating`` (with ``value`` 1..5), ``watch`` (with ``progress`` 0..1), ``purchase`` or ``skip``;
``impression`` records that a list was shown (its top item, the ``request_id`` and ``variant``
of the answer): exposure for the A/B analysis, archived but never a feature or a training row.
``event_id`` is the idempotency key (the client's, or one generated when it sends none): the log
may deliver an event more than once, its effects apply once. ``request_id`` and ``variant`` say
which recommendation the event reacts to (the recommend response carries both), ``position``
the rank at which the item was shown (0 = first), ``session_id`` the client's session.

Training reads events through :mod:`recsys.features.weights` (two-tower sample weights, the
ranker's graded labels); a rating counts like a GroupLens rating, so a dataset of ratings alone
trains exactly as before.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recsys.data.interactions import EVENT_TYPES  # noqa: F401 - re-exported: the vocabulary of event types

EventType = Literal["view", "click", "add_to_list", "rating", "watch", "purchase", "skip",
                    "impression"]  # = EVENT_TYPES
INT64_MAX = 2**63 - 1
ID_PATTERN = r"^[A-Za-z0-9._:@/-]{1,128}$"

def new_event_id() -> str:
    return uuid.uuid4().hex


class Event(BaseModel):
    """One feedback event (field names are also the V2 input names and the archive's columns)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(default_factory=new_event_id, pattern=ID_PATTERN)
    user_id: int = Field(ge=0, le=INT64_MAX)
    item_id: int = Field(ge=0, le=INT64_MAX)
    event_type: EventType = "view"
    timestamp: int = Field(ge=0, le=INT64_MAX, description="epoch seconds")
    value: float | None = Field(None, ge=1, le=5, description="the rating, with event_type rating")
    progress: float | None = Field(None, ge=0, le=1, description="share watched, with event_type watch")
    session_id: str | None = Field(None, pattern=ID_PATTERN)
    position: int | None = Field(None, ge=0, le=10_000, description="rank the item was shown at, 0 = first")
    request_id: str | None = Field(None, pattern=ID_PATTERN)
    variant: str | None = Field(None, pattern=ID_PATTERN)

    @model_validator(mode="after")
    def _values_match_the_type(self) -> Event:
        if self.event_type == "rating" and self.value is None:
            raise ValueError("value: required with event_type rating (1..5)")
        if self.event_type != "rating" and self.value is not None:
            raise ValueError(f"value: only with event_type rating, not {self.event_type}")
        if self.event_type == "watch" and self.progress is None:
            raise ValueError("progress: required with event_type watch (0..1)")
        if self.event_type != "watch" and self.progress is not None:
            raise ValueError(f"progress: only with event_type watch, not {self.event_type}")
        return self

    def row(self) -> dict[str, Any]:
        """The event as an archive row (every field, None where absent)."""
        return self.model_dump()


EVENT_COLUMNS: tuple[str, ...] = tuple(Event.model_fields)


class EventError(ValueError):
    """An event that breaks the contract; the message names the field."""


def parse_event_fields(fields: dict[str, Any]) -> Event:
    """An :class:`Event` from its fields, or :class:`EventError` naming the first bad field."""
    try:
        return Event(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ()))
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        if not loc and ":" in msg:
            raise EventError(msg) from exc  # a cross-field rule names its field itself
        raise EventError(f"{loc or 'event'}: {msg}") from exc


def result_cache_key(prefix: str, user_id: int) -> str:
    """The Redis hash holding a user's cached answers (every model version and k): dropped when
    an event changes the user's features."""
    return f"{prefix}:u:{int(user_id)}"


# The field of a user's answer hash holding its generation: an event drops the cached answers and
# sets a new generation, and an answer is stored only under the generation it was looked up in, so
# an answer computed from the row before the event can never be cached after the drop.
CACHE_GENERATION = "__gen"


def drop_cached_answers(pipe: Any, prefix: str, user_ids: list[int], ttl_seconds: int) -> None:
    """Queue on a Redis pipeline (sync or asyncio): drop each user's answers, new generation."""
    for u in user_ids:
        key = result_cache_key(prefix, u)
        pipe.delete(key)
        pipe.hset(key, CACHE_GENERATION, uuid.uuid4().hex)
        pipe.expire(key, max(1, int(ttl_seconds)))
