"""The getbill client against httpx.MockTransport: pages, retries, rate limits, auth, errors.

Time is injected (``FakeTime``): nothing here really sleeps.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from fixtures_sim import sim_transport

from archiver.errors import (
    ApiAuthError,
    ApiCredentialsError,
    ApiError,
    ApiNotFoundError,
    ApiRateLimitError,
    ApiRetriesExceededError,
    ConfigError,
    UnsafeIdError,
    ValidationError,
)
from archiver.getbill.client import GetbillClient
from archiver.getbill.records import is_fatal
from archiver.getbill.settings import ApiEvent, ApiSettings, format_event

BASE = "https://getbill.test"
TOKEN = "tok-SECRET-abc123"
CLIENT_SECRET = "cs-SECRET-xyz789"
ACCESS = "at-SECRET-"
Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Recorder:
    """Wraps a handler and keeps every request it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def make(handler: Handler, **settings: Any):
    settings.setdefault("token", TOKEN)
    recorder = Recorder(handler)
    fake = FakeTime()
    events: list[ApiEvent] = []
    client = GetbillClient(
        ApiSettings(base_url=BASE, **settings),
        http=httpx.Client(transport=httpx.MockTransport(recorder)),
        sleep=fake.sleep,
        clock=fake.clock,
        on_event=events.append,
        rng=random.Random(7),
    )
    return client, recorder, fake, events


def fu(i: int | str, debt: str = "d1", **extra: Any) -> dict[str, Any]:
    return {
        "id": f"f{i:04d}" if isinstance(i, int) else i,
        "debt_id": debt,
        "status": "delivered",
        "type": "call",
        "call_date": "2024-01-22T10:30:00+00:00",
        "processed_at": "2024-01-22T10:35:00+00:00",
        "audio_url": f"https://s3.amazonaws.com/b/call_{i}.mp3?X-Amz-Signature=sig{random.random()}",
        "media_urls_expire_at": "2024-01-22T11:35:00+00:00",
        **extra,
    }


def listing_handler(records: list[dict[str, Any]]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", 1))
        limit = int(request.url.params.get("limit", 20))
        data = records[(page - 1) * limit : page * limit]
        pages = -(-len(records) // limit)
        return httpx.Response(
            200,
            json={
                "error": False,
                "data": data,
                "pagination": {"total": len(records), "page": page, "limit": limit, "pages": pages},
            },
        )

    return handler


def one(record: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"error": False, "message": "Success", "data": record})


def api_error(status: int, message: str, **details: Any) -> httpx.Response:
    body: dict[str, Any] = {"error": True, "message": message, "code": status}
    if details:
        body["details"] = details
    return httpx.Response(status, json=body)


def assert_no_secrets(*things: Any) -> None:
    for thing in things:
        for text in (str(thing), repr(thing)):
            for secret in (TOKEN, CLIENT_SECRET, ACCESS):
                assert secret not in text, f"secret leaked in {text!r}"


# --- listings and pagination ------------------------------------------------------------------


def test_250_followups_across_3_pages():
    records = [fu(i) for i in range(250)]
    client, rec, _, events = make(listing_handler(records))
    listing = client.list_followups("d1")
    assert [f.id for f in listing.items] == [f"f{i:04d}" for i in range(250)]
    assert listing.problems == [] and listing.pages_fetched == 3 and listing.total == 250
    assert [dict(r.url.params) for r in rec.requests] == [
        {"page": str(p), "limit": "100"} for p in (1, 2, 3)
    ]
    assert rec.paths() == ["/external-api/v1/followups/debt/d1"] * 3
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in rec.requests)
    assert [e.page for e in events if e.kind == "page"] == [1, 2, 3]


def test_empty_listing():
    client, rec, _, _ = make(listing_handler([]))
    listing = client.list_followups("d1")
    assert listing.items == [] and listing.problems == [] and len(rec.requests) == 1


def test_duplicates_dropped_and_changed_duplicate_reported():
    page1 = [fu(1), fu(2)]
    # f0001 again with only a freshly signed URL (not a change); f0002 again with a new status.
    page2 = [fu(1), fu(2, status="failed"), fu(3)]

    def handler(request):
        page = int(request.url.params["page"])
        data = page1 if page == 1 else page2
        return httpx.Response(200, json={"data": data, "pagination": {"total": 3, "pages": 2}})

    client, *_ = make(handler)
    listing = client.list_followups("d1")
    assert [f.id for f in listing.items] == ["f0001", "f0002", "f0003"]
    assert listing.items[1].status == "delivered"  # first copy kept
    assert [d.id for d in listing.duplicates] == ["f0001", "f0002"]
    [warning] = listing.problems
    assert "f0002" in warning.message and "different content" in warning.message
    assert warning.context["severity"] == "warning"


def test_total_changing_mid_way_is_reported():
    records = [fu(i) for i in range(150)]

    def handler(request):
        if request.url.params["page"] == "2":
            records.append(fu(999))
        return listing_handler(records)(request)

    client, *_ = make(handler)
    listing = client.list_followups("d1")
    assert len(listing.items) == 151
    [warning] = listing.problems
    assert "changed while it was read" in warning.message and "150 to 151" in warning.message


def test_count_mismatch_is_reported():
    def handler(request):
        return httpx.Response(200, json={"data": [fu(1)], "pagination": {"total": 2, "pages": 1}})

    client, *_ = make(handler)
    [warning] = client.list_followups("d1").problems
    assert "announced 2 records but 1" in warning.message


def test_never_ending_server_hits_cap():
    def handler(request):
        page = int(request.url.params["page"])
        return httpx.Response(
            200, json={"data": [fu(f"p{page}")], "pagination": {"pages": page + 1}}
        )

    client, rec, _, _ = make(handler, max_pages=4)
    with pytest.raises(ApiError, match="did not end after 4 pages") as info:
        client.list_followups("d1")
    assert len(rec.requests) == 4
    assert info.value.path == "/external-api/v1/followups/debt/d1"


def test_bad_list_envelope_is_an_api_error():
    client, *_ = make(lambda r: httpx.Response(200, json={"data": {"not": "a list"}}))
    with pytest.raises(ApiError, match="unexpected shape"):
        client.list_followups("d1")


def test_record_problems_skip_or_keep_as_documented():
    no_id = fu(1)
    del no_id["id"]
    records = [
        no_id,
        fu(2, duration_ms="x", brand_new_field={"kept": True}),
        fu(3, debt="other-debt"),
        fu(4, call_date="not a date"),
        fu(5, status="escalated"),
        "not an object",
        fu(6),
    ]
    client, *_ = make(listing_handler(records))
    listing = client.list_followups("d1")
    assert [f.id for f in listing.items] == ["f0002", "f0004", "f0005", "f0006"]
    by_record = {p.message.split(":")[0]: p for p in listing.problems}
    assert set(by_record) == {
        "followup #0",
        "followup #1 (id=f0002)",
        "followup #2 (id=f0003)",
        "followup #3 (id=f0004)",
        "followup #4 (id=f0005)",
        "followup #5",
    }
    assert is_fatal(by_record["followup #0"]) and is_fatal(by_record["followup #5"])
    assert is_fatal(by_record["followup #2 (id=f0003)"])
    assert "other-debt" in by_record["followup #2 (id=f0003)"].message
    assert by_record["followup #1 (id=f0002)"].message.endswith(
        "field 'duration_ms': expected integer or null, got 'x'"
    )
    assert by_record["followup #4 (id=f0005)"].context["severity"] == "warning"
    kept = {f.id: f for f in listing.items}
    assert kept["f0002"].raw["brand_new_field"] == {"kept": True}  # unknown fields kept
    assert kept["f0002"].raw["duration_ms"] == "x"  # kept exactly as received
    assert kept["f0004"].call_date is None and kept["f0004"].raw["call_date"] == "not a date"
    assert len(listing.skipped) == 3


def test_list_debts():
    client, rec, _, _ = make(listing_handler([{"id": "d1"}, {"id": "d2", "iban": 5}]))
    listing = client.list_debts()
    assert [d.id for d in listing.items] == ["d1", "d2"]
    [p] = listing.problems
    assert p.context["field"] == "iban" and p.context["kept"] is True
    assert rec.paths() == ["/external-api/v1/debts"]


# --- single records ---------------------------------------------------------------------------


def test_get_followup_returns_fresh_copy():
    client, rec, _, _ = make(lambda r: one(fu("abc", new_field=1)))
    f = client.get_followup("abc")
    assert f.id == "abc" and f.raw["new_field"] == 1 and len(f.media()) == 1
    assert rec.paths() == ["/external-api/v1/followups/abc"]


def test_get_followup_with_another_id_is_refused():
    client, *_ = make(lambda r: one(fu("other")))
    with pytest.raises(ValidationError, match="asked getbill for followup abc"):
        client.get_followup("abc")


def test_get_followup_missing_id_is_refused():
    record = fu("abc")
    del record["id"]
    client, *_ = make(lambda r: one(record))
    with pytest.raises(ValidationError, match="field 'id': missing"):
        client.get_followup("abc")


def test_get_followup_checked_reports_kept_problems():
    client, *_ = make(lambda r: one(fu("abc", duration_ms=1.5)))
    f, problems = client.get_followup_checked("abc")
    assert f.id == "abc" and [p.context["field"] for p in problems] == ["duration_ms"]


def test_get_debt():
    client, rec, _, _ = make(lambda r: one({"id": "d1", "firstname": "Ann", "extra": 1}))
    debt = client.get_debt("d1")
    assert debt.id == "d1" and debt.raw["extra"] == 1
    assert "Ann" not in repr(debt)
    assert rec.paths() == ["/external-api/v1/debts/d1"]


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "a b", "x" * 200])
def test_unsafe_ids_never_reach_the_url(bad):
    client, rec, _, _ = make(lambda r: one(fu("x")))
    for call in (client.get_followup, client.list_followups, client.get_debt):
        with pytest.raises(UnsafeIdError):
            call(bad)
    assert rec.requests == []


def test_single_record_without_data_object():
    client, *_ = make(lambda r: httpx.Response(200, json={"error": False, "data": []}))
    with pytest.raises(ApiError, match="without a followup object"):
        client.get_followup("abc")


# --- error translation ------------------------------------------------------------------------


def test_404_not_retried():
    client, rec, fake, _ = make(lambda r: api_error(404, "Followup not found"))
    with pytest.raises(ApiNotFoundError) as info:
        client.get_followup("nope1")
    exc = info.value
    assert exc.status == 404 and exc.api_message == "Followup not found"
    assert exc.path == "/external-api/v1/followups/nope1"
    assert len(rec.requests) == 1 and fake.sleeps == []
    assert_no_secrets(exc)


@pytest.mark.parametrize("status", [400, 422])
def test_client_errors_not_retried(status):
    client, rec, _, _ = make(lambda r: api_error(status, "Invalid parameter", page=["bad"]))
    with pytest.raises(ApiError) as info:
        client.list_followups("d1")
    assert type(info.value) is ApiError and info.value.status == status
    assert len(rec.requests) == 1
    assert "?" not in info.value.path  # no query string in the path


def test_403_is_auth_error_with_scope_hint():
    msg = 'Required scope "debts:read" not found in token'
    client, rec, _, _ = make(lambda r: api_error(403, msg))
    with pytest.raises(ApiAuthError) as info:
        client.get_debt("d1")
    assert info.value.status == 403 and info.value.api_message == msg
    assert "lacks a scope" in str(info.value) and len(rec.requests) == 1


def test_static_token_401_is_not_retried_and_names_the_variable():
    client, rec, _, _ = make(lambda r: api_error(401, "Authentication credentials are missing"))
    with pytest.raises(ApiAuthError, match="GETBILL_TOKEN") as info:
        client.list_followups("d1")
    assert len(rec.requests) == 1
    assert_no_secrets(info.value)


def test_malformed_json_is_an_api_error_with_path():
    client, *_ = make(lambda r: httpx.Response(200, content=b"<html>oops</html>"))
    with pytest.raises(ApiError, match="malformed JSON") as info:
        client.get_followup("abc")
    assert info.value.path == "/external-api/v1/followups/abc"


def test_error_body_with_success_status():
    client, *_ = make(lambda r: httpx.Response(200, json={"error": True, "message": "nope"}))
    with pytest.raises(ApiError) as info:
        client.get_followup("abc")
    assert info.value.api_message == "nope"


def test_redirect_is_not_followed():
    client, *_ = make(
        lambda r: httpx.Response(302, headers={"Location": "https://evil.test/x?tok=SECRET"})
    )
    with pytest.raises(ApiError, match="redirect") as info:
        client.get_followup("abc")
    assert "tok=SECRET" not in str(info.value)


def test_token_echoed_by_server_is_scrubbed():
    client, *_ = make(lambda r: api_error(400, f"bad token {TOKEN}"))
    with pytest.raises(ApiError) as info:
        client.get_followup("abc")
    assert "***" in info.value.api_message
    assert_no_secrets(info.value, info.value.to_dict(), client, client.settings)


def test_error_details_say_the_reason_the_message_does_not():
    client, *_ = make(lambda r: api_error(400, "Invalid scope", scope=["not allowed: debts:read"]))
    with pytest.raises(ApiError) as info:
        client.get_followup("abc")
    assert info.value.api_message == "Invalid scope: not allowed: debts:read"
    assert info.value.message.endswith(
        "(HTTP 400 Bad Request): Invalid scope: not allowed: debts:read"
    )


def test_404_message_says_the_servers_words():
    client, *_ = make(lambda r: api_error(404, "Debt not found", debt_id=["not found"]))
    with pytest.raises(ApiNotFoundError) as info:
        client.list_followups("nope1")
    assert info.value.api_message == "Debt not found"  # "not found" adds nothing: left out
    assert info.value.message == "getbill has no such resource (HTTP 404): Debt not found"


def test_401_is_a_configuration_error():
    client, *_ = make(lambda r: api_error(401, "Authentication credentials are missing"))
    with pytest.raises(ApiCredentialsError) as info:
        client.list_followups("d1")
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ApiAuthError)
    assert "(HTTP 401): Authentication credentials are missing; check GETBILL_TOKEN" in str(
        info.value
    )


def test_unreachable_api_names_the_url_and_the_variable():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client, rec, *_ = make(refuse, max_attempts=2)
    with pytest.raises(ApiRetriesExceededError) as info:
        client.list_followups("d1")
    assert str(info.value).startswith(
        f"cannot reach the getbill API at {BASE} (GETBILL_API_URL): getbill GET "
        f"{BASE}/external-api/v1/followups/debt/d1 failed 2 times in a row; last: ConnectError"
    )
    assert len(rec.requests) == 2


# --- retries ----------------------------------------------------------------------------------


def sequence(*responses: httpx.Response | Exception) -> Handler:
    items = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        item = items.pop(0) if len(items) > 1 else items[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler


def test_503_then_success():
    client, rec, fake, events = make(sequence(api_error(503, "busy"), one(fu("abc"))))
    assert client.get_followup("abc").id == "abc"
    assert len(rec.requests) == 2
    [wait] = fake.sleeps
    assert 0 <= wait <= 0.5  # full jitter below backoff_base * 2**0
    [event] = [e for e in events if e.kind == "retry"]
    assert event.status == 503 and event.wait_seconds == wait
    assert "retrying" in format_event(event)


def test_attempts_exhausted():
    client, rec, fake, _ = make(lambda r: api_error(502, "bad gateway"), max_attempts=4)
    with pytest.raises(ApiRetriesExceededError) as info:
        client.get_followup("abc")
    assert len(rec.requests) == 4 and len(fake.sleeps) == 3
    for n, wait in enumerate(fake.sleeps, start=1):
        assert 0 <= wait <= 0.5 * 2 ** (n - 1)
    exc = info.value
    assert isinstance(exc.last_exception, ApiError) and exc.last_exception.status == 502
    assert exc.status == 502 and exc.path == "/external-api/v1/followups/abc"


def test_backoff_is_capped():
    client, _, fake, _ = make(
        lambda r: api_error(500, "x"), max_attempts=8, backoff_base=1, backoff_max=3
    )
    with pytest.raises(ApiRetriesExceededError):
        client.get_followup("abc")
    assert len(fake.sleeps) == 7 and max(fake.sleeps) <= 3


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ConnectError("connection refused"),
        httpx.RemoteProtocolError("peer closed connection"),
    ],
)
def test_transport_failures_are_retried(exc):
    client, rec, fake, _ = make(sequence(exc, one(fu("abc"))))
    assert client.get_followup("abc").id == "abc"
    assert len(rec.requests) == 2 and len(fake.sleeps) == 1


def test_connect_errors_until_attempts_run_out():
    client, rec, _, _ = make(sequence(httpx.ConnectError("refused")), max_attempts=3)
    with pytest.raises(ApiRetriesExceededError) as info:
        client.list_followups("d1")
    assert len(rec.requests) == 3
    last = info.value.last_exception
    assert isinstance(last, httpx.ConnectError) and "refused" in str(last)
    # The sanitized copy carries no request (whose headers hold the bearer token).
    with pytest.raises(RuntimeError):
        _ = last.request
    assert_no_secrets(info.value)


def test_non_retryable_httpx_error_is_translated():
    client, rec, _, _ = make(sequence(httpx.UnsupportedProtocol("nope")))
    with pytest.raises(ApiError, match="could not be sent"):
        client.get_followup("abc")
    assert len(rec.requests) == 1


# --- rate limits ------------------------------------------------------------------------------


def rate_limited(retry_after: float | None = None, headers: dict[str, str] | None = None):
    details: dict[str, Any] = {"limit": 1000}
    if retry_after is not None:
        details["retry_after"] = retry_after
    body = {
        "error": True,
        "message": "Rate limit exceeded. Please try again later.",
        "code": 429,
        "details": details,
    }
    return httpx.Response(429, json=body, headers=headers or {})


def test_429_waits_retry_after_then_succeeds():
    client, rec, fake, events = make(sequence(rate_limited(30), one(fu("abc"))))
    assert client.get_followup("abc").id == "abc"
    assert fake.sleeps == [30] and len(rec.requests) == 2
    [event] = [e for e in events if e.kind == "rate_limited"]
    assert event.wait_seconds == 30 and "waiting 30 s" in event.message


def test_429_asking_more_than_the_max_fails_fast():
    client, rec, fake, _ = make(sequence(rate_limited(1800)), max_rate_limit_wait=120)
    with pytest.raises(ApiRateLimitError) as info:
        client.get_followup("abc")
    assert len(rec.requests) == 1 and fake.sleeps == []
    text = str(info.value)
    assert "1800 s" in text and "120 s" in text and "GETBILL_MAX_RATE_LIMIT_WAIT" in text
    assert info.value.status == 429 and info.value.context["retry_at"].startswith("2023-11-14T")


def test_429_without_retry_after_waits_until_ratelimit_reset():
    fake_now = 1_700_000_000
    response = rate_limited(
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(fake_now + 45)}
    )
    client, _, fake, _ = make(sequence(response, one(fu("abc"))))
    client.get_followup("abc")
    assert fake.sleeps == [45]


def test_429_reset_time_in_details():
    body = {
        "error": True,
        "message": "x",
        "code": 429,
        "details": {"reset_time": "2023-11-14T22:14:20Z"},
    }  # 1_700_000_060
    client, _, fake, _ = make(sequence(httpx.Response(429, json=body), one(fu("abc"))))
    client.get_followup("abc")
    assert fake.sleeps == [60]


def test_429_forever_ends_with_rate_limit_error():
    client, rec, _, _ = make(sequence(rate_limited(1)), max_attempts=3)
    with pytest.raises(ApiRateLimitError, match="after 3 attempts"):
        client.get_followup("abc")
    assert len(rec.requests) == 3


def test_rate_limit_headers_tracked_and_exhausted_quota_waited_out():
    now = 1_700_000_000
    headers = {
        "X-RateLimit-Limit": "1000",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(now + 20),
        "X-RateLimit-Window": "3600",
    }
    client, rec, fake, events = make(
        lambda r: httpx.Response(200, json={"data": fu("abc")}, headers=headers)
    )
    client.get_followup("abc")
    state = client.rate_limit
    assert (state.limit, state.remaining, state.reset_at, state.window) == (1000, 0, now + 20, 3600)
    assert fake.sleeps == []
    client.get_followup("abc")  # quota used up: wait for the reset before sending
    assert fake.sleeps == [20]
    assert [e.kind for e in events] == ["rate_limited"]


# --- OAuth client credentials -----------------------------------------------------------------


class TokenServer:
    """A token endpoint plus a resource that accepts only the latest token."""

    def __init__(self, expires_in: int = 3600) -> None:
        self.expires_in = expires_in
        self.issued: list[str] = []
        self.token_bodies: list[dict[str, list[str]]] = []
        self.reject_next = 0
        self.refuse_credentials = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            assert request.method == "POST"
            assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
            assert "Authorization" not in request.headers
            self.token_bodies.append(parse_qs(request.content.decode()))
            if self.refuse_credentials:
                return httpx.Response(
                    401, json={"error": "invalid_client", "error_description": "bad secret"}
                )
            token = f"{ACCESS}{len(self.issued) + 1}"
            self.issued.append(token)
            return httpx.Response(
                200,
                json={"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in},
            )
        if self.reject_next:
            self.reject_next -= 1
            return api_error(401, "Authentication credentials are missing or invalid")
        if request.headers.get("Authorization") != f"Bearer {self.issued[-1]}":
            return api_error(401, "Authentication credentials are missing or invalid")
        return one(fu("abc"))


def make_oauth(server: TokenServer, **kw: Any):
    return make(server, token=None, client_id="client-1", client_secret=CLIENT_SECRET, **kw)


def test_client_credentials_form_body():
    server = TokenServer()
    client, rec, _, events = make_oauth(server)
    client.get_followup("abc")
    assert server.token_bodies == [
        {
            "grant_type": ["client_credentials"],
            "client_id": ["client-1"],
            "client_secret": [CLIENT_SECRET],
            "scope": ["followups:read debts:read"],
        }
    ]
    assert rec.paths() == ["/token", "/external-api/v1/followups/abc"]
    assert rec.requests[1].headers["Authorization"] == f"Bearer {ACCESS}1"
    assert any(e.kind == "token" for e in events)
    assert_no_secrets(*events, client, client.settings)


def test_token_cached_across_calls():
    server = TokenServer()
    client, rec, _, _ = make_oauth(server)
    for _ in range(3):
        client.get_followup("abc")
    assert rec.paths().count("/token") == 1


def test_token_renewed_before_expiry():
    server = TokenServer(expires_in=3600)
    client, rec, fake, _ = make_oauth(server)
    client.get_followup("abc")
    fake.now += 3600 - 61  # still outside the 60 s margin
    client.get_followup("abc")
    assert len(server.issued) == 1
    fake.now += 2  # now within 60 s of expiry: renew before the server would refuse
    client.get_followup("abc")
    assert len(server.issued) == 2
    assert rec.requests[-1].headers["Authorization"] == f"Bearer {ACCESS}2"


def test_short_lived_token_is_still_used():
    server = TokenServer(expires_in=30)  # shorter than the margin
    client, rec, _, _ = make_oauth(server)
    client.get_followup("abc")
    client.get_followup("abc")
    assert len(server.issued) == 1


def test_401_renews_token_once_and_retries():
    server = TokenServer()
    client, rec, _, _ = make_oauth(server)
    client.get_followup("abc")
    server.reject_next = 1  # e.g. the token was revoked
    assert client.get_followup("abc").id == "abc"
    assert len(server.issued) == 2
    assert rec.paths()[-3:] == [
        "/external-api/v1/followups/abc",
        "/token",
        "/external-api/v1/followups/abc",
    ]


def test_second_401_raises_auth_error():
    server = TokenServer()
    client, rec, _, _ = make_oauth(server)
    server.reject_next = 2
    with pytest.raises(ApiAuthError) as info:
        client.get_followup("abc")
    assert info.value.status == 401 and "even after renewing" in str(info.value)
    assert len(server.issued) == 2
    assert_no_secrets(info.value, info.value.to_dict())


def test_refused_client_credentials():
    server = TokenServer()
    server.refuse_credentials = True
    client, rec, _, _ = make_oauth(server)
    with pytest.raises(ApiAuthError) as info:
        client.get_followup("abc")
    exc = info.value
    assert exc.status == 401 and exc.path == "/token"
    assert exc.api_message == "bad secret"
    assert "GETBILL_CLIENT_SECRET" in str(exc)
    assert rec.paths() == ["/token"]
    assert_no_secrets(exc, exc.to_dict())


def test_refused_scope_says_the_reason_and_names_GETBILL_SCOPE():
    def handler(request: httpx.Request) -> httpx.Response:
        return api_error(400, "Invalid scope", scope=["not allowed: debts:read"])

    client, rec, _, _ = make(handler, token=None, client_id="cid", client_secret=CLIENT_SECRET)
    with pytest.raises(ApiCredentialsError) as info:
        client.list_followups("d1")
    exc = info.value
    assert isinstance(exc, ConfigError) and exc.status == 400 and exc.path == "/token"
    assert exc.message.startswith(
        "getbill refused the client credentials (HTTP 400): Invalid scope: not allowed: "
        "debts:read; this client may not have every scope asked for "
        "(GETBILL_SCOPE=followups:read debts:read): set GETBILL_SCOPE to the scopes it has, "
        "e.g. GETBILL_SCOPE='followups:read'"
    )
    assert rec.paths() == ["/token"]
    assert_no_secrets(exc, exc.to_dict())


def test_token_endpoint_503_is_retried():
    server = TokenServer()
    first = [True]

    def handler(request):
        if request.url.path == "/token" and first[0]:
            first[0] = False
            return api_error(503, "busy")
        return server(request)

    client, rec, fake, _ = make(handler, token=None, client_id="c", client_secret=CLIENT_SECRET)
    assert client.get_followup("abc").id == "abc"
    assert rec.paths() == ["/token", "/token", "/external-api/v1/followups/abc"]


# --- settings ---------------------------------------------------------------------------------


def test_settings_from_env_and_reprs_hide_secrets():
    env = {
        "GETBILL_API_URL": "https://api.example.test/",
        "GETBILL_CLIENT_ID": "cid",
        "GETBILL_CLIENT_SECRET": CLIENT_SECRET,
        "GETBILL_TOKEN": "",
        "GETBILL_MAX_RATE_LIMIT_WAIT": "600",
        "GETBILL_SCOPE": "followups:read",
    }
    s = ApiSettings.from_env(env)
    assert s.scope == "followups:read"
    assert s.base_url == "https://api.example.test" and s.client_id == "cid"
    assert s.token is None and s.auth_mode == "client_credentials"
    assert s.max_rate_limit_wait == 600
    assert s.api_root == "https://api.example.test/external-api/v1"
    assert s.token_url == "https://api.example.test/token"
    assert_no_secrets(s)
    assert ApiSettings.from_env({"GETBILL_TOKEN": TOKEN}).base_url == "https://getbill.io"


def test_defaults_documented_values():
    s = ApiSettings()
    assert (s.scope, s.max_attempts, s.backoff_base, s.backoff_max, s.page_limit) == (
        "followups:read debts:read",
        5,
        0.5,
        30,
        100,
    )


@pytest.mark.parametrize(
    "kw",
    [
        {"base_url": "ftp://getbill.io"},
        {"base_url": "http://getbill.io"},  # credentials over plain http to a real host
        {"base_url": "https://user:pw@getbill.io"},
        {"page_limit": 101},
        {"max_attempts": 0},
    ],
)
def test_bad_settings(kw):
    with pytest.raises(ConfigError):
        ApiSettings(**kw)


def test_plain_http_allowed_for_local_servers():
    assert ApiSettings(base_url="http://127.0.0.1:8080").base_url == "http://127.0.0.1:8080"
    assert ApiSettings(base_url="http://localhost:1").base_url == "http://localhost:1"
    assert ApiSettings(base_url="http://sim.test", allow_insecure_http=False)


@pytest.mark.parametrize("suffix", ["/external-api/v1", "/external-api/v1/"])
def test_api_url_with_the_api_prefix_is_taken_as_the_host(suffix):
    s = ApiSettings(base_url="https://getbill.io" + suffix)
    assert s.base_url == "https://getbill.io"
    assert s.api_root == "https://getbill.io/external-api/v1"
    assert s.token_url == "https://getbill.io/token"


@pytest.mark.parametrize(
    "env,missing",
    [
        ({"GETBILL_CLIENT_ID": "cid"}, "GETBILL_CLIENT_SECRET"),
        ({"GETBILL_CLIENT_SECRET": CLIENT_SECRET, "GETBILL_CLIENT_ID": ""}, "GETBILL_CLIENT_ID"),
    ],
)
def test_half_the_client_credentials_names_the_missing_variable(env, missing):
    with pytest.raises(ConfigError, match=f"is set but {missing} is not") as info:
        ApiSettings.from_env(env)
    assert_no_secrets(info.value)
    # A static token needs no client credentials at all.
    assert ApiSettings.from_env({**env, "GETBILL_TOKEN": TOKEN}).auth_mode == "token"


def test_bad_env_number():
    with pytest.raises(ConfigError, match="GETBILL_MAX_RATE_LIMIT_WAIT"):
        ApiSettings.from_env({"GETBILL_MAX_RATE_LIMIT_WAIT": "soon"})


def test_client_needs_credentials():
    with pytest.raises(ConfigError, match="GETBILL_TOKEN"):
        GetbillClient(ApiSettings())


def test_client_closes_only_its_own_http():
    http = httpx.Client(transport=httpx.MockTransport(lambda r: one(fu("abc"))))
    with GetbillClient(ApiSettings(token=TOKEN), http=http) as client:
        client.get_followup("abc")
    assert not http.is_closed
    own = GetbillClient(ApiSettings(token=TOKEN))
    own.close()
    assert own.http._http.is_closed
    assert json.loads(json.dumps({"repr": repr(own)}))["repr"].startswith("GetbillClient(")


# --- against the in-process simulator ---------------------------------------------------------


def sim_client(simulator, sim_clock, client_id="demo-client", secret="demo-secret", **kw):
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        sim_clock.advance(seconds)

    client = GetbillClient(
        ApiSettings(base_url="http://sim.test", client_id=client_id, client_secret=secret, **kw),
        http=httpx.Client(transport=sim_transport(simulator)),
        sleep=sleep,
        clock=sim_clock,
        rng=random.Random(1),
    )
    return client, sleeps


def test_sim_all_pages_of_the_big_debt(simulator, sim_clock):
    big = simulator.debt_ids("A")[0]
    client, _ = sim_client(simulator, sim_clock)
    listing = client.list_followups(big)
    assert [f.id for f in listing.items] == simulator.followup_ids(big)
    assert len(listing.items) == 130 and listing.pages_fetched == 2
    assert listing.problems == []  # the simulator's records fit our schemas
    assert all(f.debt_id == big for f in listing.items)
    pages = simulator.requests_to(f"/external-api/v1/followups/debt/{big}")
    assert len(pages) == 2 and len(simulator.requests_to("/token")) == 1


def test_sim_get_followup_and_debt(simulator, sim_clock):
    debt_id = simulator.debt_ids("A")[2]
    client, _ = sim_client(simulator, sim_clock)
    fid = simulator.followup_ids(debt_id)[0]
    f, problems = client.get_followup_checked(fid)
    assert f.id == fid and f.debt_id == debt_id and problems == []
    debt, problems = client.get_debt_checked(debt_id)
    assert debt.id == debt_id and problems == [] and debt.raw == simulator.debt(debt_id)


def test_sim_foreign_debt_is_403(simulator, sim_clock):
    foreign = simulator.debt_ids("B")[0]
    client, _ = sim_client(simulator, sim_clock)
    with pytest.raises(ApiAuthError) as info:
        client.list_followups(foreign)
    assert info.value.status == 403 and info.value.api_message
    assert info.value.path == f"/external-api/v1/followups/debt/{foreign}"


def test_sim_missing_debts_read_scope_is_403(simulator, sim_clock):
    debt_id = simulator.debt_ids("A")[0]
    client, _ = sim_client(
        simulator,
        sim_clock,
        "followups-only-client",
        "followups-only-secret",
        scope="followups:read",
    )
    assert client.list_followups(debt_id).items  # followups:read is enough for followups
    with pytest.raises(ApiAuthError) as info:
        client.get_debt(debt_id)
    assert info.value.status == 403 and "scope" in (info.value.api_message or "")
    assert_no_secrets(info.value)


def test_sim_client_without_debts_read_hears_the_scope_refused(simulator, sim_clock):
    client, _ = sim_client(simulator, sim_clock, "followups-only-client", "followups-only-secret")
    with pytest.raises(ApiCredentialsError) as info:
        client.list_followups(simulator.debt_ids("A")[0])
    assert info.value.api_message == "Invalid scope: not allowed: debts:read"
    assert "GETBILL_SCOPE" in info.value.message


def test_sim_wrong_secret(simulator, sim_clock):
    client, _ = sim_client(simulator, sim_clock, secret="wrong-SECRET-value")
    with pytest.raises(ApiAuthError) as info:
        client.list_followups(simulator.debt_ids("A")[0])
    assert info.value.path == "/token" and "wrong-SECRET-value" not in repr(info.value)


def test_sim_token_expiry_is_renewed(simulator, sim_clock):
    debt_id = simulator.debt_ids("A")[2]
    client, _ = sim_client(simulator, sim_clock)
    client.list_followups(debt_id)
    sim_clock.advance(3600 - 30)  # inside the renewal margin
    client.list_followups(debt_id)
    assert len(simulator.requests_to("/token")) == 2
    assert not [r for r in simulator.request_log if r.status == 401]


def test_sim_faults_429_burst_and_5xx_are_survived(simulator, sim_clock):
    debt_id = simulator.debt_ids("A")[0]
    simulator.config.burst_429 = 2
    simulator.config.burst_retry_after_s = 3
    client, sleeps = sim_client(simulator, sim_clock, max_attempts=8)
    client.get_followup(simulator.followup_ids(debt_id)[0])
    assert sleeps == [3, 3]
    simulator.config.error_rate = 0.3
    listing = client.list_followups(debt_id)
    assert len(listing.items) == 130


def test_sim_unstable_pagination(simulator, sim_clock):
    debt_id = simulator.debt_ids("A")[0]
    simulator.config.duplicate_across_pages = True
    simulator.config.unstable_total = True
    client, _ = sim_client(simulator, sim_clock)
    listing = client.list_followups(debt_id)
    ids = [f.id for f in listing.items]
    assert len(ids) == len(set(ids))
    assert set(simulator.followup_ids(debt_id)) <= set(ids)
    assert listing.duplicates  # the repeated record was dropped, first copy kept
    assert any("changed while it was read" in p.message for p in listing.problems)


def test_secrets_in_any_spelling_and_signed_urls_never_reach_errors() -> None:
    secret = "Zx9+Q/w=HIDDEN42&k"

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.content.decode()  # the form as sent: the secret is URL-encoded in it
        return httpx.Response(
            400,
            json={
                "error": True,
                "message": f"bad request {body} see https://s3.amazonaws.com/b/x?X-Amz-Signature=LEAK",
                "code": 400,
            },
        )

    client, _, _, _ = make(handler, token=None, client_id="cid", client_secret=secret)
    with pytest.raises(ApiAuthError) as caught:
        client.list_followups("d1")
    text = str(caught.value) + repr(caught.value.to_dict())
    assert "HIDDEN42" not in text and "LEAK" not in text
    assert "https://s3.amazonaws.com/b/x" in text


# ---------------------------------------------------------------------------------------------
# response size limit, over real HTTP (a server on 127.0.0.1)


def _local_client(server: Any, **settings: Any) -> GetbillClient:
    return GetbillClient(
        ApiSettings(base_url=server.base_url, token=TOKEN, **settings), sleep=lambda s: None
    )


def _debt_json(padding: int, debt_id: str = "d1") -> bytes:
    return json.dumps({"data": {"id": debt_id, "notes": "x" * padding}}).encode()


@pytest.mark.integration
def test_huge_json_with_content_length_is_refused_naming_the_path() -> None:
    from local_http import LocalServer, send

    body = _debt_json(9 * 1024 * 1024)  # over the 8 MiB default

    def route(handler: Any) -> None:
        send(handler, 200, {"Content-Type": "application/json"}, body)

    with LocalServer({"/external-api/v1/debts/d1": route}) as server:
        client = _local_client(server)
        with pytest.raises(ApiError) as caught:
            client.get_debt("d1")
    err = caught.value
    assert type(err) is ApiError
    assert err.path == "/external-api/v1/debts/d1"
    assert f"a body of {len(body)} bytes larger than the limit of 8388608 bytes" in str(err)
    assert "max_response_bytes" in str(err)
    assert len(server.requests) == 1  # not retried


@pytest.mark.integration
def test_endless_json_without_content_length_is_cut_at_the_limit() -> None:
    import itertools

    from local_http import LocalServer, stream_forever

    def pieces():
        yield b'{"data": {"id": "d1", "notes": "'
        yield from itertools.repeat(b"x" * 65536)

    with LocalServer({}) as server:
        server.routes["/external-api/v1/debts/d1"] = stream_forever(
            server, pieces(), {"Content-Type": "application/json"}, chunked=True
        )
        client = _local_client(server, max_response_bytes=1024 * 1024)
        with pytest.raises(ApiError, match="larger than the limit of 1048576 bytes") as caught:
            client.get_debt("d1")
    assert caught.value.path == "/external-api/v1/debts/d1"
    assert server.bytes_sent < 64 * 1024 * 1024  # we hung up, the server did not run dry
    assert len(server.requests) == 1


@pytest.mark.integration
def test_gzip_json_is_limited_by_its_inflated_size() -> None:
    """20 KB of gzip that inflates to 20 MiB of JSON: the limit counts what would be held in
    memory, not the wire bytes. A small gzip answer still works."""
    import gzip

    from local_http import LocalServer, send

    bomb = gzip.compress(_debt_json(20 * 1024 * 1024), mtime=0)
    small = gzip.compress(_debt_json(1000, "d2"), mtime=0)
    assert len(bomb) < 100_000

    def route(body: bytes) -> Any:
        def answer(handler: Any) -> None:
            headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
            send(handler, 200, headers, body)

        return answer

    routes = {"/external-api/v1/debts/d1": route(bomb), "/external-api/v1/debts/d2": route(small)}
    with LocalServer(routes) as server:
        client = _local_client(server)
        with pytest.raises(ApiError, match="larger than the limit") as caught:
            client.get_debt("d1")
        assert client.get_debt("d2").raw["notes"] == "x" * 1000
    assert caught.value.path == "/external-api/v1/debts/d1"


def test_response_limit_setting() -> None:
    assert ApiSettings().max_response_bytes == 8 * 1024 * 1024
    with pytest.raises(ConfigError, match="max_response_bytes"):
        ApiSettings(max_response_bytes=0)
