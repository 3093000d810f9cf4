"""getbill's answers read and translated: success bodies, error bodies, and the typed error of
each error status. Pure functions over an ``httpx.Response``; the transport is in :mod:`.http`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from archiver.common.redact import strip_query
from archiver.errors import (
    ApiAuthError,
    ApiCredentialsError,
    ApiError,
    ApiNotFoundError,
)
from archiver.getbill.settings import ApiSettings

__all__ = ["api_message", "error_for", "json_body", "safe_json"]

# Removes secrets from a text (the http layer knows which).
Scrub = Callable[[str], str]


def json_body(response: httpx.Response, path: str, scrub: Scrub) -> dict[str, Any]:
    """The JSON object of a success answer; malformed, non-object or error bodies raise
    :class:`ApiError` naming the path."""
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
            api_message=api_message(response, scrub),
        )
    return body


def api_message(response: httpx.Response, scrub: Scrub) -> str | None:
    """What the server said (message, OAuth error, and the reasons in ``details``), scrubbed
    of secrets and shortened; None when it said nothing readable."""
    body = safe_json(response)
    if not isinstance(body, dict):
        return None
    parts: list[str] = [
        v for v in (body.get("message"), body.get("error_description")) if isinstance(v, str) and v
    ]
    if not parts and isinstance(body.get("error"), str):  # OAuth: {"error": "invalid_client"}
        parts = [body["error"]]
    if not parts:
        return None
    text = " ".join(parts)
    # The documented error shape puts the reason in details ({"scope": ["not allowed: x"]}):
    # say it too, unless the message already does ("Debt not found" / "not found").
    reasons = [r for r in _detail_texts(body.get("details")) if r.lower() not in text.lower()]
    if reasons:
        text += ": " + "; ".join(reasons)
    return scrub(text)[:300]


def error_for(
    response: httpx.Response,
    path: str,
    settings: ApiSettings,
    scrub: Scrub,
    *,
    renewed: bool = False,
) -> ApiError:
    """The typed error of an error answer, with the server's own words and what to check."""
    status = response.status_code
    msg = api_message(response, scrub)
    reason = response.reason_phrase or ""
    kw: dict[str, Any] = {"status": status, "path": path, "api_message": msg}
    said = f": {msg}" if msg else ""  # the server's own words, in every message
    if status == 401:
        hint = (
            "even after renewing the access token once"
            if renewed
            else "check GETBILL_TOKEN"
            if settings.auth_mode == "token"
            else "check the client credentials"
        )
        return ApiCredentialsError(
            f"getbill rejected the credentials (HTTP 401){said}; {hint}", **kw
        )
    if status == 403:
        hint = ""
        if msg and "scope" in msg.lower():
            hint = f"; the token lacks a scope (asked for: {settings.scope})"
        return ApiAuthError(f"getbill denied access (HTTP 403){said}{hint}", **kw)
    if status == 404:
        return ApiNotFoundError(f"getbill has no such resource (HTTP 404){said}", **kw)
    if 300 <= status < 400:
        location = strip_query(response.headers.get("Location")) or "?"
        return ApiError(
            f"getbill answered a redirect (HTTP {status} to {location}); is the API URL right?",
            **kw,
        )
    if status in (400, 422):
        return ApiError(f"getbill rejected the request (HTTP {status} {reason}){said}", **kw)
    if status >= 500:
        return ApiError(f"getbill server error (HTTP {status} {reason}){said}", **kw)
    return ApiError(f"unexpected HTTP {status} {reason} from getbill{said}", **kw)


def _detail_texts(details: Any) -> list[str]:
    """The strings of an error body's ``details`` (``{field: [reason, ...]}``), in order."""
    if not isinstance(details, dict):
        return []
    texts: list[str] = []
    for value in details.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item and item not in texts:
                texts.append(item)
    return texts


def safe_json(response: httpx.Response) -> Any:
    """The body as JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None
