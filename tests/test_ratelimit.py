"""Rate-limit headers and 429 waits, as pure functions."""

from __future__ import annotations

from archiver.getbill.ratelimit import RateLimitState, to_number, wait_from_429

NOW = 1_700_000_000.0


def test_headers_update_state_and_ignore_garbage():
    state = RateLimitState()
    state.update(
        {
            "X-RateLimit-Limit": "1000",
            "X-RateLimit-Remaining": "998",
            "X-RateLimit-Reset": str(int(NOW) + 3000),
            "X-RateLimit-Window": "3600",
        },
        NOW,
    )
    assert (state.limit, state.remaining, state.reset_at, state.window) == (
        1000,
        998,
        NOW + 3000,
        3600,
    )
    state.update({"X-RateLimit-Remaining": "lots"}, NOW + 1)
    assert state.remaining == 998 and state.updated_at == NOW


def test_small_reset_is_read_as_seconds_from_now():
    state = RateLimitState()
    state.update({"X-RateLimit-Reset": "90"}, NOW)
    assert state.reset_at == NOW + 90


def test_quota_wait_only_when_nothing_left():
    state = RateLimitState(remaining=1, reset_at=NOW + 10)
    assert state.quota_wait(NOW) is None
    state.remaining = 0
    assert state.quota_wait(NOW) == 10
    assert state.quota_wait(NOW + 11) is None


def test_wait_sources_in_order():
    state = RateLimitState(reset_at=NOW + 40)
    body = {"details": {"retry_after": 1800, "reset_time": "2023-11-14T22:14:20Z"}}
    assert wait_from_429(body, {}, state, NOW)[0] == 1800
    body = {"details": {"reset_time": "2023-11-14T22:14:20Z"}}
    assert wait_from_429(body, {}, state, NOW)[0] == 60
    assert wait_from_429({}, {"Retry-After": "7"}, state, NOW) == (7, "Retry-After header")
    assert wait_from_429(None, {}, state, NOW) == (40, "until X-RateLimit-Reset")
    assert wait_from_429({"details": "x"}, {}, RateLimitState(), NOW) is None


def test_retry_after_as_http_date_and_past_times_clamped():
    wait, _ = wait_from_429(
        {}, {"Retry-After": "Tue, 14 Nov 2023 22:14:20 GMT"}, RateLimitState(), NOW
    )
    assert wait == 60
    body = {"details": {"reset_time": "2000-01-01T00:00:00Z"}}
    assert wait_from_429(body, {}, RateLimitState(), NOW)[0] == 0


def test_to_number():
    assert to_number("12.5") == 12.5 and to_number(3) == 3.0
    assert to_number(True) is None and to_number("nan") is None and to_number([1]) is None
