"""Client of the getbill.io external API (``{base}/external-api/v1``).

All network I/O goes through one ``httpx.Client`` (tests pass one built on
``httpx.MockTransport``); httpx exceptions are translated into :mod:`archiver.errors` here and
nowhere else. The client reads, it never writes to getbill.

Behaviour, in short:

* **Auth**: a static bearer token, or OAuth2 client credentials (``POST {base}/token``). The
  access token is cached, renewed ``token_renew_margin`` seconds before ``expires_in`` runs out,
  and renewed once more if a call answers 401 (that call is then retried once).
* **Retries**: 500/502/503/504, timeouts and connection errors are retried with exponential
  backoff and jitter, at most ``max_attempts`` times, then
  :class:`ApiRetriesExceededError` (``last_exception`` says what failed last).
* **Rate limits**: ``X-RateLimit-*`` headers are tracked in :attr:`GetbillClient.rate_limit`.
  A 429 waits ``details.retry_after`` (else ``details.reset_time``, ``Retry-After``,
  ``X-RateLimit-Reset``), announced through ``on_event``; a wait longer than
  ``max_rate_limit_wait`` raises :class:`ApiRateLimitError` at once instead of hanging.
* **Errors**: 400/401/403/404/422 are not retried: typed errors carrying ``status``, the API's
  ``message`` and the request path (never a query string, a token or a secret).
* **Records**: each record of a listing is validated on its own (:mod:`archiver.common.schemas`);
  records without a usable id are skipped and reported, others are kept and their problems
  reported beside them (:class:`Listing`).

Settings and events live in :mod:`archiver.getbill.settings`, the rate-limit arithmetic in
:mod:`.ratelimit`, the page loop in :mod:`.pagination` (all re-exported here
where the CLI needs them).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx

from archiver import __version__
from archiver.common.backoff import backoff_delay
from archiver.common.canonical import canonical_json
from archiver.common.ids import check_id
from archiver.common.redact import install_log_redaction, scrub_secrets, strip_query
from archiver.common.schemas import is_fatal, record_label, validate, validate_record
from archiver.errors import (
    ApiAuthError,
    ApiError,
    ApiNotFoundError,
    ApiRateLimitError,
    ApiRetriesExceededError,
    ConfigError,
    ValidationError,
)
from archiver.getbill.pagination import Duplicate, Page, PageNumberPaginator, paginate
from archiver.getbill.ratelimit import RateLimitState, wait_from_429
from archiver.getbill.records import MEDIA_FIELDS, VOLATILE_FIELDS, Debt, Followup
from archiver.getbill.settings import (
    API_PREFIX,
    DEFAULT_BASE_URL,
    DEFAULT_SCOPE,
    ApiEvent,
    ApiSettings,
    EventKind,
    format_event,
)

# httpx logs request URLs (signatures included) if an application enables its logger.
install_log_redaction()

__all__ = [
    "API_PREFIX",
    "DEFAULT_BASE_URL",
    "DEFAULT_SCOPE",
    "EventKind",
    "RETRYABLE_EXCEPTIONS",
    "RETRYABLE_STATUSES",
    "ApiEvent",
    "ApiSettings",
    "GetbillClient",
    "Listing",
    "RateLimitState",
    "format_event",
]

# The documented lifetime of an access token, used when the token response omits expires_in.
DEFAULT_TOKEN_LIFETIME = 3600.0

# The named set of retryable failures; everything else fails at once.
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


T = TypeVar("T")


@dataclass
class Listing(Generic[T]):
    """All records of a listing, and every problem found while reading them.

    ``problems`` are :class:`ValidationError` with ``kept`` in their context (False: the record
    was skipped, it cannot be archived) and ``severity`` (``error`` or ``warning``). Listing-level
    warnings (the listing changed while read, count mismatch) have no ``kept``.
    """

    items: list[T] = field(default_factory=list)
    problems: list[ValidationError] = field(default_factory=list)
    pages_fetched: int = 0
    total: int | None = None
    duplicates: list[Duplicate] = field(default_factory=list)

    @property
    def skipped(self) -> list[ValidationError]:
        """Problems that made a record unusable."""
        return [p for p in self.problems if is_fatal(p)]


class GetbillClient:
    """Reads followups and debts from getbill. Use as a context manager, or call :meth:`close`.

    ``http``: the ``httpx.Client`` to use (not closed by us); default: our own.
    ``sleep``/``clock``: injected so tests never really wait. ``on_event``: receives
    :class:`ApiEvent` (rate-limit waits, retries, token renewals, pages).
    ``rng``: the random source of the backoff jitter.
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
        if settings.auth_mode == "none":
            raise ConfigError(
                "no getbill credentials: set GETBILL_TOKEN, or GETBILL_CLIENT_ID and "
                "GETBILL_CLIENT_SECRET"
            )
        self.settings = settings
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
        self.requests_sent = 0

    # -- lifecycle

    def close(self) -> None:
        """Close the HTTP client if we created it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> GetbillClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        # Never the token or secret: only where we talk to and how we authenticate.
        return (
            f"GetbillClient(base_url={self.settings.base_url!r}, auth={self.settings.auth_mode!r})"
        )

    # -- public reads

    def list_followups(self, debt_id: str) -> Listing[Followup]:
        """Every followup of a debt (``GET /followups/debt/{id}``, all pages).

        Records naming another debt are skipped and reported (they would be archived under
        the wrong debt).
        """
        did = check_id(debt_id, what="debt id")
        return self._listing(
            f"/followups/debt/{quote(did, safe='')}",
            "followup",
            lambda raw, label: _build_followup(raw, label),
            expected_debt_id=did,
        )

    def get_followup(self, followup_id: str) -> Followup:
        """A fresh copy of one followup (``GET /followups/{id}``): fresh signed media URLs."""
        return self.get_followup_checked(followup_id)[0]

    def get_followup_checked(self, followup_id: str) -> tuple[Followup, list[ValidationError]]:
        """Like :meth:`get_followup`, also returning the problems of a record that was kept.

        Raises :class:`ValidationError` if the record cannot be used (no/unsafe id, another id).
        """
        fid = check_id(followup_id, what="followup id")
        raw, problems = self._one(f"/followups/{quote(fid, safe='')}", "followup", fid)
        followup, more = _build_followup(raw, record_label("followup", raw, None))
        return followup, problems + more

    def get_debt(self, debt_id: str) -> Debt:
        """One debt (``GET /debts/{id}``; needs ``debts:read``). Holds personal data."""
        return self.get_debt_checked(debt_id)[0]

    def get_debt_checked(self, debt_id: str) -> tuple[Debt, list[ValidationError]]:
        """Like :meth:`get_debt`, also returning the problems of a record that was kept."""
        did = check_id(debt_id, what="debt id")
        raw, problems = self._one(f"/debts/{quote(did, safe='')}", "debt", did)
        return Debt.from_record(raw), problems

    def list_debts(self) -> Listing[Debt]:
        """Every debt visible to the credentials (``GET /debts``, all pages)."""
        return self._listing("/debts", "debt", lambda raw, label: (Debt.from_record(raw), []))

    def iter_pages(
        self,
        resource: str,
        params: Mapping[str, Any] | None = None,
        *,
        paginator: PageNumberPaginator | None = None,
    ) -> Iterator[Page]:
        """The raw pages of any list endpoint under ``/external-api/v1`` (``resource`` like
        ``/followups``), deduplicated by id, with the page cap applied. Records are not
        validated here; pass ``paginator`` to read its totals afterwards."""
        path = API_PREFIX + resource
        if paginator is None:
            paginator = self._paginator()
        extra = dict(params or {})

        def fetch(page_params: dict[str, int]) -> dict[str, Any]:
            body = self._get_json(resource, {**extra, **page_params})
            shape = validate("list_response", body, label=f"page {page_params['page']}")
            if shape:
                raise ApiError(
                    "getbill answered a list request with an unexpected shape: "
                    + "; ".join(p.message for p in shape[:3]),
                    path=path,
                )
            return body

        for page in paginate(fetch, paginator, path=path):
            self._emit(
                ApiEvent(
                    "page",
                    f"{path}: page {page.number}"
                    + (f"/{page.pages}" if page.pages else "")
                    + f", {len(page.records)} records",
                    path=path,
                    page=page.number,
                    pages=page.pages,
                )
            )
            yield page

    def _paginator(self) -> PageNumberPaginator:
        return PageNumberPaginator(
            limit=self.settings.page_limit,
            max_pages=self.settings.max_pages,
            fingerprint=_stable_fingerprint,
        )

    # -- listings and single records

    def _listing(
        self,
        resource: str,
        kind: Literal["followup", "debt"],
        build: Callable[[dict[str, Any], str], tuple[Any, list[ValidationError]]],
        *,
        expected_debt_id: str | None = None,
    ) -> Listing[Any]:
        listing: Listing[Any] = Listing()
        index = 0
        unique_records = 0
        paginator = self._paginator()
        for page in self.iter_pages(resource, paginator=paginator):
            listing.pages_fetched += 1
            listing.total = page.total if page.total is not None else listing.total
            for raw in page.records:
                unique_records += 1
                item, problems = self._accept(kind, raw, index, build, expected_debt_id)
                listing.problems.extend(problems)
                if item is not None:
                    listing.items.append(item)
                index += 1
            for dup in page.duplicates:
                listing.duplicates.append(dup)
                if not dup.same_content:
                    listing.problems.append(
                        ValidationError(
                            f"{kind} (id={dup.id}) appears again on page {dup.page} with "
                            f"different content; the copy from page {dup.first_page} is kept",
                            severity="warning",
                            kept=True,
                            **{"followup_id" if kind == "followup" else "debt_id": dup.id},
                        )
                    )
        path = API_PREFIX + resource
        if paginator.total_changed:
            listing.problems.append(
                ValidationError(
                    f"the listing {path} changed while it was read (total went from "
                    f"{paginator.first_total} to {paginator.last_total}); records may have "
                    "shifted between pages: run again to be sure none was missed",
                    severity="warning",
                )
            )
        elif listing.total is not None and unique_records != listing.total:
            listing.problems.append(
                ValidationError(
                    f"the listing {path} announced {listing.total} records but "
                    f"{unique_records} distinct ones were received",
                    severity="warning",
                )
            )
        return listing

    @staticmethod
    def _accept(
        kind: Literal["followup", "debt"],
        raw: Any,
        index: int,
        build: Callable[[dict[str, Any], str], tuple[Any, list[ValidationError]]],
        expected_debt_id: str | None,
    ) -> tuple[Any, list[ValidationError]]:
        problems = validate_record(kind, raw, where=index)
        if any(is_fatal(p) for p in problems):
            return None, problems
        label = record_label(kind, raw, index)
        if expected_debt_id is not None and raw.get("debt_id") != expected_debt_id:
            problems.append(
                ValidationError(
                    f"{label}: field 'debt_id': names debt {raw.get('debt_id')}, not the listed "
                    f"debt {expected_debt_id}; skipped (it would be archived under another debt)",
                    field="debt_id",
                    severity="error",
                    kept=False,
                    followup_id=raw.get("id"),
                    debt_id=expected_debt_id,
                )
            )
            return None, problems
        try:
            item, more = build(raw, label)
        except ValidationError as exc:
            problems.append(
                ValidationError(
                    f"{label}: {exc.message}; skipped", **{**exc.context, "kept": False}
                )
            )
            return None, problems
        known = {p.context.get("field") for p in problems}
        problems.extend(p for p in more if p.context.get("field") not in known)
        return item, problems

    def _one(
        self, resource: str, kind: Literal["followup", "debt"], wanted_id: str
    ) -> tuple[dict[str, Any], list[ValidationError]]:
        path = API_PREFIX + resource
        body = self._get_json(resource)
        raw = body.get("data")
        if not isinstance(raw, dict):
            raise ApiError(
                f"getbill answered without a {kind} object in 'data'",
                path=path,
                status=200,
            )
        problems = validate_record(kind, raw, where=None)
        fatal = [p for p in problems if is_fatal(p)]
        if fatal:
            raise ValidationError(
                f"{fatal[0].message} (from {path}); the record cannot be archived",
                **{k: v for k, v in fatal[0].context.items() if k != "kept"},
            )
        if raw.get("id") != wanted_id:
            raise ValidationError(
                f"asked getbill for {kind} {wanted_id} and got {kind} {raw.get('id')!r:.40}",
                field="id",
            )
        return raw, problems

    # -- HTTP: one request with retries, auth and error translation

    def _get_json(self, resource: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
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
                self._access_token = None
                self._emit(
                    ApiEvent(
                        "token",
                        "the API refused the access token (401); renewing it once",
                        path=path,
                        status=401,
                    )
                )
                continue
            if not 200 <= response.status_code < 300:
                raise self._error_for(response, path, renewed=renewed)
            return self._json_body(response, path)

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
                headers["Authorization"] = f"Bearer {self._bearer()}"
            try:
                self.requests_sent += 1
                response = self._http.request(
                    method,
                    url,
                    params=dict(params) if params else None,
                    data=dict(data) if data else None,
                    headers=headers,
                    timeout=self.settings.timeout,
                )
                # Read the body inside the try: a connection dropped mid-body is retryable.
                response.read()
            except RETRYABLE_EXCEPTIONS as exc:
                last = self._sanitized(exc)
                if attempt < attempts:
                    self._backoff(attempt, path, f"{type(exc).__name__}: {last}")
                    continue
                raise ApiRetriesExceededError(
                    f"getbill {method} failed {attempts} times in a row; last: "
                    f"{type(exc).__name__}: {last}",
                    last_exception=last,
                    path=path,
                ) from last
            except httpx.HTTPError as exc:
                raise ApiError(
                    f"getbill {method} could not be sent: {type(exc).__name__}: "
                    f"{self._sanitized(exc)}",
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
                        api_message=self._api_message(response),
                    )
                self._emit(
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
                last = self._error_for(response, path)
                if attempt < attempts:
                    self._backoff(attempt, path, f"HTTP {status}", status=status)
                    continue
                raise ApiRetriesExceededError(
                    f"getbill {method} answered HTTP {status} {attempts} times in a row",
                    last_exception=last,
                    status=status,
                    path=path,
                    api_message=self._api_message(response),
                )
            return response
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _backoff(self, attempt: int, path: str, reason: str, *, status: int | None = None) -> None:
        wait = self._backoff_delay(attempt)
        self._emit(
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
            err = self._error_for(response, path)
            if response.status_code in (400, 401, 403):
                raise ApiAuthError(
                    f"getbill refused the client credentials (HTTP {response.status_code}); "
                    "check GETBILL_CLIENT_ID / GETBILL_CLIENT_SECRET and the scopes "
                    f"({s.scope})",
                    status=response.status_code,
                    path=path,
                    api_message=err.api_message,
                )
            raise err
        body = self._json_body(response, path)
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
        self._token_expires_at = asked_at + lifetime
        # A short-lived token must still be usable: never keep more than half its life as margin.
        self._token_margin = min(s.token_renew_margin, lifetime / 2)
        self._emit(ApiEvent("token", f"obtained an access token valid {lifetime:.0f} s", path=path))
        return token

    # -- rate limits

    def _respect_quota(self, path: str) -> None:
        """Wait for the window to reset when the last response said no request is left."""
        wait = self.rate_limit.quota_wait(self._clock())
        if wait is None or wait > self.settings.max_rate_limit_wait:
            # Too long: send anyway and let the server's 429 decide (and fail fast with details).
            return
        self._emit(
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
        hint = wait_from_429(_safe_json(response), response.headers, self.rate_limit, self._clock())
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

    def _json_body(self, response: httpx.Response, path: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
            ctype = response.headers.get("Content-Type", "unknown")
            raise ApiError(
                f"getbill answered HTTP {response.status_code} with malformed JSON "
                f"(Content-Type {ctype!r:.60}, {len(response.content)} bytes)",
                status=response.status_code,
                path=path,
            ) from None
        if not isinstance(body, dict):
            raise ApiError(
                f"getbill answered with JSON {type(body).__name__}, expected an object",
                status=response.status_code,
                path=path,
            )
        if body.get("error") is True:
            raise ApiError(
                "getbill answered with an error body despite a success status",
                status=response.status_code,
                path=path,
                api_message=self._api_message(response),
            )
        return body

    def _api_message(self, response: httpx.Response) -> str | None:
        body = _safe_json(response)
        if not isinstance(body, dict):
            return None
        parts: list[str] = [
            v
            for v in (body.get("message"), body.get("error_description"))
            if isinstance(v, str) and v
        ]
        if not parts and isinstance(body.get("error"), str):  # OAuth: {"error": "invalid_client"}
            parts = [body["error"]]
        if not parts:
            return None
        return self._scrub(" ".join(parts))[:300]

    def _error_for(self, response: httpx.Response, path: str, *, renewed: bool = False) -> ApiError:
        status = response.status_code
        msg = self._api_message(response)
        reason = response.reason_phrase or ""
        kw: dict[str, Any] = {"status": status, "path": path, "api_message": msg}
        if status == 401:
            hint = (
                "even after renewing the access token once"
                if renewed
                else "check GETBILL_TOKEN"
                if self.settings.auth_mode == "token"
                else "check the client credentials"
            )
            return ApiAuthError(f"getbill rejected the credentials (HTTP 401); {hint}", **kw)
        if status == 403:
            hint = ""
            if msg and "scope" in msg.lower():
                hint = f"; the token lacks a scope (asked for: {self.settings.scope})"
            return ApiAuthError(f"getbill denied access (HTTP 403){hint}", **kw)
        if status == 404:
            return ApiNotFoundError("getbill has no such resource (HTTP 404)", **kw)
        if 300 <= status < 400:
            location = strip_query(response.headers.get("Location")) or "?"
            return ApiError(
                f"getbill answered a redirect (HTTP {status} to {location}); is the API URL right?",
                **kw,
            )
        if status in (400, 422):
            return ApiError(f"getbill rejected the request (HTTP {status} {reason})", **kw)
        if status >= 500:
            return ApiError(f"getbill server error (HTTP {status} {reason})", **kw)
        return ApiError(f"unexpected HTTP {status} {reason} from getbill", **kw)

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

    def _emit(self, event: ApiEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)


# -- record helpers


_DATE_FIELDS = ("call_date", "processed_at", "media_urls_expire_at")


def _build_followup(raw: dict[str, Any], label: str) -> tuple[Followup, list[ValidationError]]:
    """Followup.from_record, but a bad date costs only that date, not the record.

    The record is evidence: it is kept exactly as received (``raw``) and the field is read as
    unknown (None) in the typed view, with a problem reported.
    """
    cleaned = raw
    problems: list[ValidationError] = []
    for _ in range(len(_DATE_FIELDS) + 1):
        try:
            followup = Followup.from_record(cleaned)
        except ValidationError as exc:
            name = exc.context.get("field")
            if name not in _DATE_FIELDS or cleaned.get(name) is None:
                raise
            cleaned = {**cleaned, name: None}
            problems.append(
                ValidationError(
                    f"{label}: field {name!r}: {exc.message}; record kept, date read as unknown",
                    field=name,
                    severity="error",
                    kept=True,
                    followup_id=raw.get("id"),
                    debt_id=raw.get("debt_id"),
                )
            )
            continue
        if cleaned is not raw:
            followup = dataclasses.replace(followup, raw=raw)
        return followup, problems
    raise AssertionError("unreachable")


def _stable_fingerprint(record: dict[str, Any]) -> bytes:
    """Canonical bytes ignoring what changes with each signing (URL queries, expiry)."""
    stable = {k: v for k, v in record.items() if k not in VOLATILE_FIELDS}
    for name in MEDIA_FIELDS.values():
        if isinstance(stable.get(name), str):
            stable[name] = strip_query(stable[name])
    try:
        return canonical_json(stable)
    except Exception:  # noqa: BLE001 - e.g. a float RFC 8785 refuses; repr still tells apart
        return repr(sorted(stable.items(), key=lambda kv: str(kv[0]))).encode()


def _safe_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
