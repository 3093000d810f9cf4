"""HTTP transport of the getbill client: auth, retries, rate limits and error translation.

All network I/O goes through one ``httpx.Client`` (tests pass one built on
``httpx.MockTransport``); httpx exceptions are translated into :mod:`archiver.errors` here and
nowhere else.

* **Auth**: a static bearer token, or OAuth2 client credentials (``POST {base}/token``). The
  access token is cached, renewed ``token_renew_margin`` seconds before ``expires_in`` runs out,
  and renewed once more if a call answers 401 (that call is then retried once).
* **Retries**: 500/502/503/504, timeouts and connection errors are retried with exponential
  backoff and jitter, at most ``max_attempts`` times, then
  :class:`ApiRetriesExceededError` (``last_exception`` says what failed last).
* **Rate limits**: ``X-RateLimit-*`` headers are tracked in :attr:`ApiHttp.rate_limit`.
  A 429 waits ``details.retry_after`` (else ``details.reset_time``, ``Retry-After``,
  ``X-RateLimit-Reset``), announced through ``on_event``; a wait longer than
  ``max_rate_limit_wait`` raises :class:`ApiRateLimitError` at once instead of hanging.
* **Errors**: 400/401/403/404/422 are not retried: typed errors carrying ``status``, the API's
  ``message`` (with the reasons its ``details`` give) and the request path (never a query
  string, a token or a secret); each message repeats the server's words and names the setting
  to change. Refused credentials or scopes are :class:`ApiCredentialsError`, also a
  configuration error.
* **Size**: no body over ``max_response_bytes`` is held in memory, declared (Content-Length)
  or streamed, counted after decompression (a small gzip body can inflate to gigabytes):
  :class:`ApiError` naming the path, not retried.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from archiver import __version__
from archiver.common.backoff import backoff_delay
from archiver.common.redact import register_secret, scrub_secrets, strip_query
from archiver.errors import (
    ApiAuthError,
    ApiCredentialsError,
    ApiError,
    ApiRateLimitError,
    ApiRetriesExceededError,
)
from archiver.getbill.answers import api_message, error_for, json_body, safe_json
from archiver.getbill.ratelimit import RateLimitState, wait_from_429
from archiver.getbill.settings import API_PREFIX, ApiEvent, ApiSettings

__all__ = ["DEFAULT_TOKEN_LIFETIME", "RETRYABLE_EXCEPTIONS", "RETRYABLE_STATUSES", "ApiHttp"]

# The documented lifetime of an access token, used when the token response omits expires_in.
DEFAULT_TOKEN_LIFETIME = 3600.0

# The named set of retryable failures; everything else fails at once.
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


class ApiHttp:
    """Sends authenticated GETs to the getbill API and returns their JSON bodies.

    ``http``: the ``httpx.Client`` to use (not closed by us); default: our own.
    ``sleep``/``clock``: injected so tests never really wait. ``on_event``: receives
    :class:`ApiEvent` (rate-limit waits, retries, token renewals).
    ``rng``: the random source of the backoff jitter.

    ``gate``: called with the path before every request is sent (each attempt, the token
    request too); it may raise (:class:`~archiver.errors.BudgetExhaustedError`) to stop the
    request. A run with a request budget sets it (:mod:`archiver.sync.budget`).
    """

    def __init__(
        self,
        settings: ApiSettings,
        *,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        on_event: Callable[[ApiEvent], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        register_secret(settings.token, settings.client_secret)  # kept out of every log line
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(follow_redirects=False)
        self._sleep = sleep
        self._clock = clock
        self._on_event = on_event
        self._rng = rng or random.Random()
        self.rate_limit = RateLimitState()
        self._access_token: str | None = None
        self._token_expires_at = 0.0
        self._token_margin = settings.token_renew_margin
        self.gate: Callable[[str], None] | None = None
        # Worker threads share one client: one of them renews the token, the others wait.
        self._token_lock = threading.Lock()

    def close(self) -> None:
        """Close the HTTP client if we created it."""
        if self._owns_http:
            self._http.close()

    def __repr__(self) -> str:
        # Never the token or secret: only where we talk to and how we authenticate.
        return f"ApiHttp(base_url={self.settings.base_url!r}, auth={self.settings.auth_mode!r})"

    def emit(self, event: ApiEvent) -> None:
        """Hand ``event`` to the ``on_event`` callback, if there is one."""
        if self._on_event is not None:
            self._on_event(event)

    # -- one request with retries, auth and error translation

    def get_json(self, resource: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``GET {base}/external-api/v1{resource}``: the JSON object of a 2xx answer.

        Raises the :class:`ApiError` subclass that fits any other answer.
        """
        path = API_PREFIX + resource
        url = self.settings.base_url + path
        renewed = False
        while True:
            response = self._send("GET", url, path, params=params, authorized=True)
            if (
                response.status_code == 401
                and self.settings.auth_mode == "client_credentials"
                and not renewed
            ):
                # The cached token may have been revoked or expired early: renew once.
                renewed = True
                with self._token_lock:
                    self._access_token = None
                self.emit(
                    ApiEvent(
                        "token",
                        "the API refused the access token (401); renewing it once",
                        path=path,
                        status=401,
                    )
                )
                continue
            if not 200 <= response.status_code < 300:
                raise error_for(response, path, self.settings, self._scrub, renewed=renewed)
            return json_body(response, path, self._scrub)

    def _send(
        self,
        method: str,
        url: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        authorized: bool,
    ) -> httpx.Response:
        """One logical request: retries transient failures, waits out short 429s.

        Returns the first response that is neither retryable nor a 429.
        """
        attempts = self.settings.max_attempts
        last: Exception | None = None
        for attempt in range(1, attempts + 1):
            self._respect_quota(path)
            headers = {
                "Accept": "application/json",
                "User-Agent": f"getbill-archiver/{__version__}",
            }
            if authorized:
                headers["Authorization"] = f"Bearer {self._bearer()}"  # may request a token
            if self.gate is not None:
                self.gate(path)
            try:
                request = self._http.build_request(
                    method,
                    url,
                    params=dict(params) if params else None,
                    data=dict(data) if data else None,
                    headers=headers,
                    timeout=self.settings.timeout,
                )
                # Read the body inside the try: a connection dropped mid-body is retryable.
                response = self._read_bounded(self._http.send(request, stream=True), path)
            except RETRYABLE_EXCEPTIONS as exc:
                last = self._sanitized(exc)
                if attempt < attempts:
                    self._backoff(attempt, path, f"{type(exc).__name__}: {last}")
                    continue
                raise ApiRetriesExceededError(
                    f"{self._unreachable(exc)}getbill {method} {strip_query(url)} failed "
                    f"{attempts} times in a row; last: {type(exc).__name__}: {last}",
                    last_exception=last,
                    path=path,
                ) from last
            except httpx.HTTPError as exc:
                raise ApiError(
                    f"getbill {method} {strip_query(url)} could not be sent: "
                    f"{type(exc).__name__}: {self._sanitized(exc)}",
                    path=path,
                ) from None

            self.rate_limit.update(response.headers, self._clock())
            status = response.status_code
            if status == 429:
                wait, source = self._rate_limit_wait(response, attempt)
                self._check_wait(wait, source, path)
                if attempt >= attempts:
                    raise ApiRateLimitError(
                        f"getbill still answers 429 (rate limited) after {attempts} attempts",
                        status=429,
                        path=path,
                        api_message=api_message(response, self._scrub),
                    )
                self.emit(
                    ApiEvent(
                        "rate_limited",
                        f"rate limited on {path}: waiting {wait:.0f} s ({source}; at most "
                        f"{self.settings.max_rate_limit_wait:.0f} s allowed)",
                        path=path,
                        wait_seconds=wait,
                        attempt=attempt,
                        status=429,
                    )
                )
                self._sleep(wait)
                continue
            if status in RETRYABLE_STATUSES:
                last = error_for(response, path, self.settings, self._scrub)
                if attempt < attempts:
                    self._backoff(attempt, path, f"HTTP {status}", status=status)
                    continue
                raise ApiRetriesExceededError(
                    f"getbill {method} answered HTTP {status} {attempts} times in a row",
                    last_exception=last,
                    status=status,
                    path=path,
                    api_message=api_message(response, self._scrub),
                )
            return response
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _read_bounded(self, response: httpx.Response, path: str) -> httpx.Response:
        """The response with its body read, or :class:`ApiError` once it passes the limit."""
        limit = self.settings.max_response_bytes
        try:
            if response.is_stream_consumed:  # already in memory (a test transport)
                body = response.content
                if len(body) > limit:
                    raise self._too_large(path, limit, response.status_code)
                return response
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise self._too_large(path, limit, response.status_code, f"{int(declared)} bytes")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise self._too_large(path, limit, response.status_code)
                chunks.append(chunk)
        finally:
            response.close()
        # The decoded body, as a response of its own: no Content-Encoding left to undo.
        return httpx.Response(
            response.status_code,
            headers=[
                (name, value)
                for name, value in response.headers.multi_items()
                if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
            ],
            content=b"".join(chunks),
            request=response.request,
            extensions=response.extensions,
        )

    def _too_large(self, path: str, limit: int, status: int, size: str = "") -> ApiError:
        what = f"a body of {size}" if size else "a body"
        return ApiError(
            f"getbill answered {what} larger than the limit of {limit} bytes on {path}; "
            "refused (ApiSettings.max_response_bytes)",
            status=status,
            path=path,
        )

    def _backoff(self, attempt: int, path: str, reason: str, *, status: int | None = None) -> None:
        wait = self._backoff_delay(attempt)
        self.emit(
            ApiEvent(
                "retry",
                f"{path}: {reason}; retrying in {wait:.1f} s "
                f"(attempt {attempt + 1} of {self.settings.max_attempts})",
                path=path,
                wait_seconds=wait,
                attempt=attempt,
                status=status,
            )
        )
        self._sleep(wait)

    # -- auth

    def _bearer(self) -> str:
        if self.settings.token:
            return self.settings.token
        if self._access_token and self._clock() < self._token_expires_at - self._token_margin:
            return self._access_token
        with self._token_lock:
            if self._access_token and self._clock() < self._token_expires_at - self._token_margin:
                return self._access_token  # renewed by another thread meanwhile
            return self._fetch_token()

    def _fetch_token(self) -> str:
        path = "/token"
        s = self.settings
        asked_at = self._clock()
        response = self._send(
            "POST",
            s.token_url,
            path,
            data={
                "grant_type": "client_credentials",
                "client_id": s.client_id or "",
                "client_secret": s.client_secret or "",
                "scope": s.scope,
            },
            authorized=False,
        )
        if not 200 <= response.status_code < 300:
            err = error_for(response, path, self.settings, self._scrub)
            if response.status_code in (400, 401, 403):
                raise self._credentials_refused(response.status_code, err.api_message)
            raise err
        body = json_body(response, path, self._scrub)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ApiAuthError("the token response has no access_token", status=200, path=path)
        expires_in = body.get("expires_in")
        lifetime = (
            float(expires_in)
            if isinstance(expires_in, int | float)
            and not isinstance(expires_in, bool)
            and expires_in > 0
            else DEFAULT_TOKEN_LIFETIME
        )
        self._access_token = token
        register_secret(token)
        self._token_expires_at = asked_at + lifetime
        # A short-lived token must still be usable: never keep more than half its life as margin.
        self._token_margin = min(s.token_renew_margin, lifetime / 2)
        self.emit(ApiEvent("token", f"obtained an access token valid {lifetime:.0f} s", path=path))
        return token

    def _credentials_refused(self, status: int, api_message: str | None) -> ApiCredentialsError:
        """The token endpoint's refusal, with the server's reason and the setting to change."""
        s = self.settings
        reason = f": {api_message}" if api_message else ""
        if "scope" in (api_message or "").lower():
            example = " ".join(x for x in s.scope.split() if x != "debts:read") or "followups:read"
            hint = (
                f"this client may not have every scope asked for (GETBILL_SCOPE={s.scope}): "
                "set GETBILL_SCOPE to the scopes it has, e.g. "
                f"GETBILL_SCOPE={example!r} (without debts:read the manifests note why the "
                "debt record is missing)"
            )
        else:
            hint = (
                "check GETBILL_CLIENT_ID / GETBILL_CLIENT_SECRET, and the scopes asked for "
                f"(GETBILL_SCOPE={s.scope})"
            )
        return ApiCredentialsError(
            f"getbill refused the client credentials (HTTP {status}){reason}; {hint}",
            status=status,
            path="/token",
            api_message=api_message,
        )

    def _unreachable(self, exc: Exception) -> str:
        """For a connection that could not be opened at all: which setting names the host."""
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return f"cannot reach the getbill API at {self.settings.base_url} (GETBILL_API_URL): "
        return ""

    # -- rate limits

    def _respect_quota(self, path: str) -> None:
        """Wait for the window to reset when the last response said no request is left."""
        wait = self.rate_limit.quota_wait(self._clock())
        if wait is None or wait > self.settings.max_rate_limit_wait:
            # Too long: send anyway and let the server's 429 decide (and fail fast with details).
            return
        self.emit(
            ApiEvent(
                "rate_limited",
                f"request quota used up: waiting {wait:.0f} s for the window to reset",
                path=path,
                wait_seconds=wait,
            )
        )
        self._sleep(wait)
        self.rate_limit.remaining = None

    def _rate_limit_wait(self, response: httpx.Response, attempt: int) -> tuple[float, str]:
        hint = wait_from_429(safe_json(response), response.headers, self.rate_limit, self._clock())
        if hint is not None:
            return hint
        return self._backoff_delay(attempt), "no wait given; backing off"

    def _backoff_delay(self, attempt: int) -> float:
        s = self.settings
        return backoff_delay(attempt, s.backoff_base, s.backoff_max, self._rng)

    def _check_wait(self, wait: float, source: str, path: str) -> None:
        limit = self.settings.max_rate_limit_wait
        if wait <= limit:
            return
        retry_at = datetime.fromtimestamp(self._clock() + wait, UTC).isoformat(timespec="seconds")
        raise ApiRateLimitError(
            f"getbill rate limit reached (HTTP 429): the server asks to wait {wait:.0f} s "
            f"({source}), more than the allowed maximum of {limit:.0f} s. Run again after "
            f"{retry_at}, or allow longer waits with GETBILL_MAX_RATE_LIMIT_WAIT "
            "(ApiSettings.max_rate_limit_wait, in seconds)",
            status=429,
            path=path,
            wait_seconds=round(wait, 3),
            max_wait_seconds=limit,
            retry_at=retry_at,
        )

    # -- responses and errors

    def _scrub(self, text: str) -> str:
        """No secret in any spelling (as is, URL-encoded, form-encoded), no signed query."""
        return scrub_secrets(
            text, (self.settings.token, self.settings.client_secret, self._access_token)
        )

    def _sanitized(self, exc: Exception) -> Exception:
        """A copy of an httpx error without its request (whose headers hold the token)."""
        message = self._scrub(str(exc))
        try:
            return type(exc)(message)
        except Exception:  # noqa: BLE001 - some exception types want other arguments
            return ApiError(message)
