"""Webhook deliveries as evidence: ``webhooks/{sha256}.json``, one object per distinct body.

The key is the SHA-256 of the raw body, and no date: a duplicate delivery, or a replay of an
old body days later, finds its key taken and stores nothing (a date in the key would give a
replay a second object). The object is JSON (schema-free, ``format`` names it):

* ``body_base64``: the raw body, byte for byte as received (what the signature covers;
  base64, so a body that is not UTF-8 survives too), ``body_sha256`` and ``body_size``;
* ``received_at``, the delivery's non-secret ``headers``, ``signature`` (which of the
  configured secrets verified it: ``current`` or ``previous``), ``json`` (whether the body
  parsed) and the ``event_type`` it names.

The ``X-GetBill-Signature`` header is kept: an HMAC of the body, not the secret, from which
the secret cannot be recovered; whoever holds the secret can check later that getbill sent
these bytes. ``Authorization``, cookies and any header whose name looks secret are never
stored, and every value is scrubbed of the registered secrets (the webhook secret among them).

Written like every object (:meth:`ObjectStore.put_bytes`, or the same request through
:class:`~archiver.store.smallputs.SmallPuts`): conditional, checksummed, locked.
The first delivery of a body is the evidence; a later one meets a taken key
(:class:`ObjectConflictError`: other headers, another time) and is a duplicate.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from archiver.common.canonical import canonical_json
from archiver.common.redact import registered_secrets, scrub_secrets
from archiver.common.time import iso_precise
from archiver.errors import ObjectConflictError
from archiver.store.objects import ObjectStore
from archiver.store.smallputs import PutsBytes
from archiver.store.types import Lock

__all__ = [
    "DELIVERY_FORMAT",
    "WEBHOOKS_PREFIX",
    "Delivery",
    "delivery_bytes",
    "delivery_key",
    "evidence_headers",
    "read_delivery",
    "store_delivery",
]

WEBHOOKS_PREFIX = "webhooks/"
DELIVERY_FORMAT = "getbill-archiver/webhook-delivery"
# Header names never stored, and words that make any other name look secret.
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-amz-security-token"}
)
_SECRET_WORDS = ("auth", "cookie", "token", "secret", "password", "session", "api-key", "apikey")
_MAX_HEADERS = 64
_MAX_VALUE = 2048


def delivery_key(body_sha256: str) -> str:
    """``webhooks/{sha256}.json``: the key of the body with this SHA-256."""
    return f"{WEBHOOKS_PREFIX}{body_sha256}.json"


def evidence_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers worth keeping as evidence: names lower-cased, repeated ones joined with
    ``", "``, secret-looking ones dropped, values scrubbed of registered secrets and cut at
    2 KiB, at most 64 of them."""
    kept: dict[str, str] = {}
    secrets = registered_secrets()
    for name, value in headers:
        low = name.lower()
        if low in _SECRET_HEADERS or any(word in low for word in _SECRET_WORDS):
            continue
        if low not in kept and len(kept) >= _MAX_HEADERS:
            continue
        clean = scrub_secrets(value, secrets)[:_MAX_VALUE]
        kept[low] = f"{kept[low]}, {clean}" if low in kept else clean
    return kept


@dataclass(frozen=True)
class Delivery:
    """One signed delivery as received."""

    body: bytes
    headers: dict[str, str]
    received_at: datetime
    signed_with: str
    json_ok: bool
    event_type: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    @property
    def key(self) -> str:
        return delivery_key(self.sha256)


def delivery_bytes(delivery: Delivery) -> bytes:
    """The stored object: canonical JSON of the envelope (see the module docstring)."""
    return canonical_json(
        {
            "format": DELIVERY_FORMAT,
            "version": 1,
            "body_sha256": delivery.sha256,
            "body_size": len(delivery.body),
            "body_base64": base64.b64encode(delivery.body).decode("ascii"),
            "received_at": iso_precise(delivery.received_at),
            "headers": delivery.headers,
            "signature": {"scheme": "hmac-sha256-hex", "secret": delivery.signed_with},
            "json": delivery.json_ok,
            "event_type": delivery.event_type,
        }
    )


def store_delivery(store: PutsBytes, delivery: Delivery, lock: Lock) -> bool:
    """Store ``delivery`` under its key (through ``store``: the :class:`ObjectStore`, or its
    :class:`~archiver.store.smallputs.SmallPuts`); True if this call stored it, False if its
    body was stored before (a duplicate or a replay). S3 errors raise (:class:`StorageError`)."""
    try:
        stored = store.put_bytes(
            delivery.key,
            delivery_bytes(delivery),
            lock=lock,
            content_type="application/json",
            metadata={"kind": "webhook-delivery", "body-sha256": delivery.sha256},
        )
    except ObjectConflictError:
        return False  # the same body, delivered before with other headers or at another time
    return stored.created


def read_delivery(store: ObjectStore, body_sha256: str) -> tuple[bytes, dict[str, Any]]:
    """A stored delivery: ``(raw body, envelope)``; the body is checked against its key."""
    envelope = json.loads(store.read_bytes(delivery_key(body_sha256)))
    body = base64.b64decode(envelope["body_base64"], validate=True)
    if hashlib.sha256(body).hexdigest() != body_sha256:
        raise ValueError(f"the body stored under {delivery_key(body_sha256)} has another SHA-256")
    return body, envelope
