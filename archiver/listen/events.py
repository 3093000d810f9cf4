"""What a webhook payload hints at: which followup or debt to archive again.

getbill posts ``{"type": ..., "data": {...}, "changes": {...}}``. The payload is a hint and
never evidence of the followup itself: the worker fetches the followup again
(``GET /followups/{id}``) and archives its debt from the API. Only ids are taken from it,
and only ids that are safe key segments.

* ``followup.*`` (``created``, ``updated``, ``completed``, ``failed``): ``data.id`` is the
  followup; its debt is the one the API names, not ``data.debt_id``.
* ``debt.*`` (``updated``, ``status_changed``): ``data.id`` is the debt.
* any other type (``payment.received``, ...): ``data.debt_id`` names the debt concerned, if
  any; without one, the delivery is stored and nothing is archived.

A body that is not a JSON object with a string ``type`` and an object ``data`` is malformed:
stored all the same (it is signed), answered 202 and reported.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from archiver.common.ids import is_safe_id

__all__ = ["Hint", "HintKind", "read_hint"]

HintKind = Literal["followup", "debt", "none", "malformed"]
# ``followup.created``: what reaches the logs and the queue is a name, never arbitrary text.
_EVENT_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}(\.[A-Za-z0-9_-]{1,40}){0,3}")


@dataclass(frozen=True)
class Hint:
    """``kind`` ``followup``/``debt``: ``ref`` is that id; ``none``: nothing to archive;
    ``malformed``: ``reason`` says what is wrong. ``json``: the body parsed as JSON."""

    kind: HintKind
    event_type: str | None = None
    ref: str | None = None
    reason: str | None = None
    json: bool = True


def read_hint(body: bytes) -> Hint:
    """The hint of a raw webhook body (see the module docstring)."""
    try:
        payload: Any = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        return Hint("malformed", reason=f"not JSON: {type(exc).__name__}", json=False)
    if not isinstance(payload, dict):
        return Hint("malformed", reason=f"a JSON {type(payload).__name__}, not an object")
    event_type = payload.get("type")
    data = payload.get("data")
    if not isinstance(event_type, str) or not _EVENT_NAME.fullmatch(event_type):
        return Hint("malformed", reason="no 'type' that is an event name")
    if not isinstance(data, dict):
        return Hint("malformed", event_type, reason="no object 'data'")
    family = event_type.split(".", 1)[0]
    if family == "followup":
        return _ref("followup", event_type, data.get("id"), "data.id")
    if family == "debt":
        return _ref("debt", event_type, data.get("id"), "data.id")
    if "debt_id" in data:
        return _ref("debt", event_type, data.get("debt_id"), "data.debt_id")
    return Hint("none", event_type)


def _ref(kind: HintKind, event_type: str, value: Any, where: str) -> Hint:
    if not is_safe_id(value):
        return Hint("malformed", event_type, reason=f"{where} is not a usable id")
    return Hint(kind, event_type, str(value))
