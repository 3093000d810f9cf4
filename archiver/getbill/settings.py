"""Settings and progress events of the getbill API client (see :mod:`archiver.getbill.client`).

Kept apart from the client so the CLI can build settings and print events without importing
the HTTP machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any, Literal
from urllib.parse import urlsplit

from archiver.common.redact import strip_query
from archiver.errors import ConfigError

__all__ = [
    "API_PREFIX",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_SCOPE",
    "ApiEvent",
    "ApiSettings",
    "EventKind",
    "format_event",
]

DEFAULT_BASE_URL = "https://getbill.io"
API_PREFIX = "/external-api/v1"
DEFAULT_SCOPE = "followups:read debts:read"
# A page of 100 followups is a few hundred KB: 8 MiB leaves room, and bounds memory.
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
# Hosts to which plain http is acceptable without allow_insecure_http: they never leave the
# machine (loopback) or cannot exist on the internet (RFC 2606/6761 reserved names).
_LOOPBACK_NAMES = {"localhost"}
_RESERVED_SUFFIXES = (".localhost", ".test", ".invalid")


@dataclass(frozen=True)
class ApiSettings:
    """How to reach and authenticate to getbill. Defaults follow the public docs.

    base_url: API host; resources live under ``{base_url}/external-api/v1``, the token
        endpoint at ``{base_url}/token`` (env ``GETBILL_API_URL``). A URL that already ends
        in ``/external-api/v1`` is taken as the host before it.
    token: a static bearer token (env ``GETBILL_TOKEN``); wins over client credentials.
    client_id, client_secret: OAuth2 client credentials (env ``GETBILL_CLIENT_ID``,
        ``GETBILL_CLIENT_SECRET``).
    scope: scopes asked for with client credentials (env ``GETBILL_SCOPE``); ``debts:read``
        is only needed to archive the debt record itself: a client without it sets
        ``GETBILL_SCOPE=followups:read`` and the manifests note why the debt is missing.
    timeout: seconds for connect/read/write/pool of each request.
    max_attempts: tries per request, counting the first (5xx, timeouts, connection errors
        and 429 waits all count).
    backoff_base, backoff_max: exponential backoff with equal jitter
        (:func:`archiver.common.backoff.backoff_delay`): attempt n waits a random time in
        ``[c/2, c]`` seconds, ``c = min(backoff_max, backoff_base * 2**(n-1))``.
    max_rate_limit_wait: the longest a 429 may make us wait, in seconds (env
        ``GETBILL_MAX_RATE_LIMIT_WAIT``); the documented 429 asks for up to an hour, so a
        longer wait fails fast with :class:`ApiRateLimitError` instead.
    page_limit: records per page (the API's maximum is 100).
    max_pages: hard cap on pages of one listing (100,000 records at the default limit).
    token_renew_margin: renew the access token this many seconds before it expires.
    max_response_bytes: the largest API response body read, in bytes after any
        Content-Encoding is undone (default 8 MiB); a larger one is refused with
        :class:`ApiError` naming the path, never retried.
    allow_insecure_http: allow sending credentials over plain ``http://`` to a host that is
        not local (loopback, ``localhost``, ``*.test``); off by default.
    """

    base_url: str = DEFAULT_BASE_URL
    token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    scope: str = DEFAULT_SCOPE
    timeout: float = 30.0
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_rate_limit_wait: float = 120.0
    page_limit: int = 100
    max_pages: int = 1000
    token_renew_margin: float = 60.0
    allow_insecure_http: bool = False
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        base = (self.base_url or "").strip().rstrip("/")
        if base.endswith(API_PREFIX):
            # The API documentation shows resource URLs with the prefix; the base is the host.
            base = base[: -len(API_PREFIX)].rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"getbill API URL must be http(s)://host, got {strip_query(base)!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigError("getbill API URL must not contain credentials, a query or fragment")
        if (
            parts.scheme == "http"
            and not self.allow_insecure_http
            and not _is_local(parts.hostname)
        ):
            raise ConfigError(
                f"refusing to send getbill credentials over plain http to {parts.hostname}; "
                "use https (or allow_insecure_http for a test server)"
            )
        object.__setattr__(self, "base_url", base)
        for name in ("timeout", "backoff_base", "backoff_max", "token_renew_margin"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0")
        if not self.max_rate_limit_wait >= 0:
            raise ConfigError("max_rate_limit_wait must be >= 0")
        if self.max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")
        if not 1 <= self.page_limit <= 100:
            raise ConfigError("page_limit must be between 1 and 100 (the API's maximum)")
        if self.max_pages < 1:
            raise ConfigError("max_pages must be at least 1")
        if self.max_response_bytes < 1:
            raise ConfigError("max_response_bytes must be at least 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> ApiSettings:
        """Read ``GETBILL_API_URL``, ``GETBILL_TOKEN``, ``GETBILL_CLIENT_ID``,
        ``GETBILL_CLIENT_SECRET``, ``GETBILL_SCOPE`` and ``GETBILL_MAX_RATE_LIMIT_WAIT``;
        ``overrides`` (e.g. from CLI flags) win. Empty variables count as unset. Half a pair of
        client credentials (without ``GETBILL_TOKEN``) raises :class:`ConfigError` naming the
        missing variable."""
        values: dict[str, Any] = {}
        for env_name, attr in (
            ("GETBILL_API_URL", "base_url"),
            ("GETBILL_TOKEN", "token"),
            ("GETBILL_CLIENT_ID", "client_id"),
            ("GETBILL_CLIENT_SECRET", "client_secret"),
            ("GETBILL_SCOPE", "scope"),
        ):
            if environ.get(env_name):
                values[attr] = environ[env_name].strip()
        wait = environ.get("GETBILL_MAX_RATE_LIMIT_WAIT")
        if wait:
            try:
                values["max_rate_limit_wait"] = float(wait)
            except ValueError:
                raise ConfigError(
                    f"GETBILL_MAX_RATE_LIMIT_WAIT must be a number of seconds, got {wait!r:.20}"
                ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values.get("token"):
            for have, missing in (("client_id", "client_secret"), ("client_secret", "client_id")):
                if values.get(have) and not values.get(missing):
                    raise ConfigError(
                        f"GETBILL_{have.upper()} is set but GETBILL_{missing.upper()} is not: "
                        f"set GETBILL_{missing.upper()} too (or use GETBILL_TOKEN instead)"
                    )
        return cls(**values)

    @property
    def api_root(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def token_url(self) -> str:
        return self.base_url + "/token"

    @property
    def auth_mode(self) -> Literal["token", "client_credentials", "none"]:
        if self.token:
            return "token"
        if self.client_id and self.client_secret:
            return "client_credentials"
        return "none"


def _is_local(host: str) -> bool:
    host = host.lower()
    if host in _LOOPBACK_NAMES or host.endswith(_RESERVED_SUFFIXES):
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


EventKind = Literal["rate_limited", "retry", "token", "page", "relist"]


@dataclass(frozen=True)
class ApiEvent:
    """Something the user should see while the client works (it never prints itself).

    kind: ``rate_limited`` (waiting for a 429 / exhausted quota), ``retry`` (a transient
    failure, waiting before the next attempt), ``token`` (an access token was obtained or
    renewed), ``page`` (one page of a listing was read), ``relist`` (a listing changed while
    it was read and is read again).
    """

    kind: EventKind
    message: str
    path: str | None = None
    wait_seconds: float | None = None
    attempt: int | None = None
    status: int | None = None
    page: int | None = None
    pages: int | None = None


def format_event(event: ApiEvent) -> str:
    """One human line for an :class:`ApiEvent`, e.g. for ``click.echo(..., err=True)``."""
    return f"getbill API: {event.message}"
