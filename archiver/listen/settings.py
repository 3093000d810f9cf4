"""Settings of ``archiver listen`` (documented defaults; the CLI fills them from flags and
the environment: ``GETBILL_WEBHOOK_SECRET``, ``GETBILL_WEBHOOK_SECRET_PREVIOUS``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from archiver.common.redact import register_secret
from archiver.errors import ConfigError

__all__ = [
    "MAX_BODY_BYTES",
    "SECRET_ENV",
    "PREVIOUS_SECRET_ENV",
    "ListenSettings",
]

SECRET_ENV = "GETBILL_WEBHOOK_SECRET"
PREVIOUS_SECRET_ENV = "GETBILL_WEBHOOK_SECRET_PREVIOUS"
MAX_BODY_BYTES = 1024 * 1024
_MIN_SECRET_LENGTH = 16


@dataclass(frozen=True, repr=False)
class ListenSettings:
    """How the listener receives and works.

    secret / previous_secret: webhook secrets; a delivery signed with either is accepted
        (the previous one only while getbill's secret is being rotated).
    max_body_bytes: larger bodies are refused (413) before they are read whole.
    header_timeout_s: a connection must send a request's headers within this (else closed).
    body_timeout_s: and its body within this once the headers are in (else 408); getbill
        wants an answer within 10 s, so a real delivery never comes near either.
    keep_alive_s: an idle keep-alive connection is closed after this.
    max_connections: connections served at once; more are answered 503.
    intake_threads: deliveries checked and stored at once (each waits on S3).
    workers: debts archived at once.
    capacity: deliveries the worker holds in memory at once (the bounded queue); the rest wait
        in the queue file, stored and acknowledged, and are archived later.
    archive_defer_s: while deliveries are being received, one waits up to this long before
        it is resolved and archived: acknowledgements go first, and the deliveries of a debt
        that arrive meanwhile are archived together.
    max_attempts: tries of one delivery before it is given up (``failed``; the hourly sync
        still covers its debt).
    retry_base_s / retry_max_s: the backoff between tries.
    render_dossiers: render each new manifest's dossier.
    """

    secret: str
    previous_secret: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    keep_alive_s: int = 5
    max_connections: int = 1000
    intake_threads: int = 16
    workers: int = 2
    capacity: int = 256
    archive_defer_s: float = 10.0
    max_attempts: int = 5
    retry_base_s: float = 5.0
    retry_max_s: float = 300.0
    render_dossiers: bool = False

    def __post_init__(self) -> None:
        register_secret(self.secret, self.previous_secret)  # kept out of every log line
        for name, value in ((SECRET_ENV, self.secret), (PREVIOUS_SECRET_ENV, self.previous_secret)):
            if value is not None and len(value) < _MIN_SECRET_LENGTH:
                raise ConfigError(f"{name} is too short: at least {_MIN_SECRET_LENGTH} characters")
        if min(self.workers, self.capacity, self.max_attempts, self.intake_threads) < 1:
            raise ConfigError("workers, capacity, max_attempts and intake_threads are at least 1")

    def __repr__(self) -> str:
        # Never the secrets.
        return f"ListenSettings(workers={self.workers}, max_body_bytes={self.max_body_bytes})"

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: object) -> ListenSettings:
        """The secrets from ``env`` (a missing current secret is a :class:`ConfigError`)."""
        secret = (env.get(SECRET_ENV) or "").strip()
        if not secret:
            raise ConfigError(
                f"no webhook secret: set {SECRET_ENV} to the secret getbill signs webhooks with "
                f"(and {PREVIOUS_SECRET_ENV} to the old one while it is rotated)"
            )
        previous = (env.get(PREVIOUS_SECRET_ENV) or "").strip() or None
        return cls(secret=secret, previous_secret=previous, **overrides)  # type: ignore[arg-type]

    def secrets(self) -> list[tuple[str, str]]:
        """``(name, secret)`` pairs to check a signature against."""
        pairs = [("current", self.secret)]
        if self.previous_secret:
            pairs.append(("previous", self.previous_secret))
        return pairs
