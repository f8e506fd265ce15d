"""The wire shape of an event (API.md, "Events"): id, type, version, occurred_at, data, trace.

Events themselves are the frozen dataclasses of each context's ``events.py``, carrying
``TYPE`` and ``VERSION`` class attributes. The envelope adds identity and tracing so the
same fact can be stored in an outbox or sent to a broker unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, Protocol

from infrastructure.observability.tracing import TRACEPARENT, traceparent_to_pass_on
from infrastructure.request_context import current_request_id
from infrastructure.serialization import to_data


class Event(Protocol):
    """What every published event dataclass provides."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int]


@dataclass(frozen=True)
class Envelope:
    event: Any
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    trace: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def wrap(cls, event: Event) -> Envelope:
        """The event as the request (or delivery) under way records it: its request id and its
        trace, which the event's deliveries continue."""
        trace: dict[str, str] = {}
        traceparent = traceparent_to_pass_on()
        if traceparent:
            trace[TRACEPARENT] = traceparent
        request_id = current_request_id()
        if request_id:
            trace["request_id"] = request_id
        return cls(event=event, trace=trace)

    @property
    def type(self) -> str:
        return str(self.event.TYPE)

    @property
    def version(self) -> int:
        return int(self.event.VERSION)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": self.type,
            "version": self.version,
            "occurred_at": to_data(self.occurred_at),
            "data": to_data(self.event),
            "trace": dict(self.trace),
        }
