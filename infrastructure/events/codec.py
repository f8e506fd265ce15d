"""Events to and from the JSON stored in an outbox (and, once split, sent through a broker).

Encoding is the envelope of API.md; decoding rebuilds the publishing context's own frozen
dataclass with pydantic, which reads the dataclass's type hints, so ``events.py`` modules stay
standard library only and subscribers receive exactly what in-process publishers produced.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from infrastructure.events.envelope import Envelope


def decode(envelope: Mapping[str, Any], event_class: type[Any]) -> Envelope:
    return Envelope(
        event=_adapter(event_class).validate_python(envelope["data"]),
        id=uuid.UUID(envelope["id"]),
        occurred_at=datetime.fromisoformat(envelope["occurred_at"]),
        trace=dict(envelope.get("trace") or {}),
    )


_adapters: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(event_class: type[Any]) -> TypeAdapter[Any]:
    # Building an adapter compiles a validator; do it once per event class.
    if event_class not in _adapters:
        _adapters[event_class] = TypeAdapter(event_class)
    return _adapters[event_class]
