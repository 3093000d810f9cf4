"""Asking time-stamping authorities (RFC 3161 over HTTP) for a token over some bytes.

:class:`TsaClient` sends one ``application/timestamp-query`` (SHA-256 imprint, a nonce, the
signer's certificate asked for) and checks the answer before it is kept: granted, the same
nonce and imprint, and, with trusted roots, signed by a TSA they certify
(:func:`archiver.timestamps.tokens.verify_token`). :class:`Timestamper` holds the configured
TSAs (``ARCHIVER_TSA_URL``, in order): the first that answers with a good token gives it, and
one that failed is skipped for :attr:`Timestamper.cooldown` seconds, so that a TSA that is
down costs one timeout per run, not one per manifest. Nothing here writes to S3.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx
from rfc3161_client import HashAlgorithm, PKIStatus, TimestampRequestBuilder

from archiver.common.canonical import sha256_hex
from archiver.common.redact import strip_query
from archiver.errors import TimestampError
from archiver.timestamps.tokens import decode_response, verify_token

__all__ = ["MAX_TOKEN_BYTES", "Stamp", "Timestamper", "TsaClient", "open_timestamper"]

MAX_TOKEN_BYTES = 1 << 20
"""The largest answer read from a TSA (a token with its certificates is a few kB)."""

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"


class TsaClient:
    """One TSA at ``url`` over ``http``; ``ca_pem``: the trusted roots its tokens must chain
    to (None: the signature is not checked when a token is received)."""

    def __init__(self, url: str, http: httpx.Client, ca_pem: bytes | None) -> None:
        self.url = url
        self.name = strip_query(url)  # for messages: no user:password, no query
        self._http = http
        self._ca_pem = ca_pem

    def request_token(self, data: bytes) -> bytes:
        """A time-stamp response over the SHA-256 of ``data``, checked; raises
        :class:`TimestampError` (naming the TSA) when it is down, refuses or answers badly."""
        request = (
            TimestampRequestBuilder()
            .data(data)
            .hash_algorithm(HashAlgorithm.SHA256)
            .nonce(nonce=True)
            .cert_request(cert_request=True)
            .build()
        )
        body = self._post(request.as_bytes())
        try:
            resp = decode_response(body)
        except ValueError as exc:
            raise self._error(
                f"answered with something that is not a time-stamp response: {exc}"
            ) from None
        if resp.status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
            why = "; ".join(resp.status_string) or f"status {resp.status}"
            raise self._error(f"refused the request: {why}", status=int(resp.status))
        if resp.tst_info.nonce != request.nonce:
            raise self._error("answered with a token for another request (nonce differs)")
        check = verify_token(body, sha256_hex(data), self._ca_pem)
        if not check.ok:
            raise self._error(
                "answered with a token that does not verify: "
                + "; ".join(p.message for p in check.problems if p.blocking)
            )
        return body

    def _post(self, query: bytes) -> bytes:
        try:
            with self._http.stream(
                "POST",
                self.url,
                content=query,
                headers={"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE},
            ) as answer:
                if answer.status_code != 200:
                    raise self._error(
                        f"answered HTTP {answer.status_code}", status=answer.status_code
                    )
                kind = answer.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind != REPLY_TYPE:
                    raise self._error(f"answered {kind or 'no content type'}, not {REPLY_TYPE}")
                body = bytearray()
                for chunk in answer.iter_bytes():
                    body += chunk
                    if len(body) > MAX_TOKEN_BYTES:
                        raise self._error(f"answered more than {MAX_TOKEN_BYTES} bytes")
                return bytes(body)
        except httpx.HTTPError as exc:
            raise self._error(f"could not be reached: {type(exc).__name__}") from None

    def _error(self, message: str, **context: object) -> TimestampError:
        return TimestampError(f"TSA {self.name} {message}", url=self.url, **context)


@dataclass(frozen=True)
class Stamp:
    """What :meth:`Timestamper.stamp` got: the token and the TSA that gave it (None when no
    TSA did), and why each TSA asked did not give one."""

    token: bytes | None
    tsa: str | None
    failures: list[str] = field(default_factory=list)


class Timestamper:
    """The configured TSAs, asked in order (see the module docstring). Thread-safe."""

    def __init__(
        self,
        clients: Sequence[TsaClient],
        *,
        cooldown: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not clients:
            raise ValueError("a timestamper needs at least one TSA")
        self.clients = list(clients)
        self.cooldown = cooldown
        self._clock = clock
        self._failed_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def stamp(self, data: bytes) -> Stamp:
        """A token over the SHA-256 of ``data`` from the first TSA that gives a good one."""
        failures: list[str] = []
        for client in self.clients:
            with self._lock:
                failed = self._failed_at.get(client.url)
            if failed is not None and self._clock() - failed < self.cooldown:
                failures.append(f"TSA {client.name} failed moments ago; not asked again yet")
                continue
            try:
                token = client.request_token(data)
            except TimestampError as exc:
                with self._lock:
                    self._failed_at[client.url] = self._clock()
                failures.append(exc.message)
                continue
            with self._lock:
                self._failed_at.pop(client.url, None)
            return Stamp(token, client.name, failures)
        return Stamp(None, None, failures)


def open_timestamper(
    urls: Sequence[str], ca_pem: bytes | None, *, timeout: float = 10.0
) -> tuple[Timestamper, httpx.Client]:
    """A :class:`Timestamper` over ``urls`` and the HTTP client it uses (the caller closes it).
    Redirects are not followed: a TSA answers where it is configured."""
    http = httpx.Client(timeout=timeout, follow_redirects=False)
    return Timestamper([TsaClient(url, http, ca_pem) for url in urls]), http
