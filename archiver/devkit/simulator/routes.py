"""Request handlers of the simulator: ``POST /token``, the ``/external-api/v1`` reads, media.

``GET /followups`` (every followup of the client's company) takes ``page``/``limit``,
``status``, ``type``, ``debt_id`` and ``from``/``to``:

* ``from``/``to`` are days (``YYYY-MM-DD``, else 400). In this simulator they apply to the
  followup's date, which is its ``call_date``, else its ``scheduled_at``, taken as the day of
  that instant in UTC. Both bounds are inclusive (``from=to=2025-12-01`` lists that one day).
  A followup with neither date is excluded as soon as either bound is given.
* The real API names ``from``/``to`` without saying which date they filter on, in which zone
  or whether the bounds are inclusive: the archiver must not rely on these semantics (a
  client can use them to narrow a listing, never to decide that nothing else changed).
* The order is ``config.followups_order``: ``"debt"`` (debt by debt, each debt's followups
  oldest first, as ``/followups/debt/{id}`` lists them) or ``"date"`` (the whole company by
  the date above, oldest first, ties by id, undated ones last). The real API documents no
  order either, so the archiver must work with both.
* Listings are computed once per state of the dataset (:mod:`.listing`): a page of a listing
  already computed costs a slice plus rendering its items.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import parse_qs, unquote

from archiver.devkit.simulator.config import (
    DEFAULT_LIMIT,
    FOLLOWUP_STATUSES,
    FOLLOWUP_TYPES,
    MAX_LIMIT,
)
from archiver.devkit.simulator.listing import FollowupQuery
from archiver.devkit.simulator.state import (
    API_PREFIX,
    HTML_ERROR_PAGE,
    ApiFailure,
    Headers,
    Response,
    SimulatorState,
    Token,
    json_body,
    parse_query,
    rfc3339z,
    s3_error,
)

FOLLOWUPS_SCOPE = "followups:read"
DEBTS_SCOPE = "debts:read"
INJECTED_5XX = (500, 502, 503, 504)


def _json(status: int, obj: Any, headers: Headers | None = None) -> Response:
    body = json_body(obj)
    out = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    return Response(status, out + (headers or []), [body])


def _error(
    status: int, message: str, details: Any = None, headers: Headers | None = None
) -> Response:
    body = {"error": True, "message": message, "code": status, "details": details or {}}
    return _json(status, body, headers)


def dispatch(sim: SimulatorState, environ: dict[str, Any], method: str, path: str) -> Response:
    """Route one request."""
    if path == "/token":
        if method != "POST":
            return _error(405, "Method not allowed")
        return _token(sim, environ)
    if path.startswith("/media/"):
        if method not in ("GET", "HEAD"):
            return s3_error(405, "MethodNotAllowed", "The specified method is not allowed", path)
        return _media(sim, environ, method, path)
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        return _api(sim, environ, method, path[len(API_PREFIX) :])
    return _error(404, "Not found")


# ---------------------------------------------------------------------------- token


def _token(sim: SimulatorState, environ: dict[str, Any]) -> Response:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    basic = environ.get("HTTP_AUTHORIZATION", "")
    if basic.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(basic[6:].strip()).decode()
            client_id, _, secret = decoded.partition(":")
        except (ValueError, UnicodeDecodeError):
            pass
    headers, _ = sim.rate_state(client_id or None, count=False)
    if form.get("grant_type") != "client_credentials":
        return _error(
            400,
            "Unsupported grant type",
            {"grant_type": ["must be client_credentials"]},
            headers,
        )
    client = sim.client_spec(client_id)
    if client is None or not secret or client.client_secret != secret:
        return _error(
            401,
            "Invalid client credentials",
            {"client_id": ["unknown client or wrong secret"]},
            headers,
        )
    requested = form.get("scope", "").split()
    refused = [s for s in requested if s not in client.scopes]
    if refused:
        return _error(
            400, "Invalid scope", {"scope": [f"not allowed: {' '.join(refused)}"]}, headers
        )
    scopes = requested or list(client.scopes)
    token = sim.issue_token(client.client_id, scopes)
    body = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": int(sim.config.token_ttl_s),
        "scope": " ".join(scopes),
    }
    return _json(200, body, headers + [("Cache-Control", "no-store")])


# ---------------------------------------------------------------------------- API


def _api(sim: SimulatorState, environ: dict[str, Any], method: str, sub: str) -> Response:
    if sim.config.delay_s > 0:
        time.sleep(sim.config.delay_s)
    try:
        token = sim.authenticate(environ)
    except ApiFailure as exc:
        headers, _ = sim.rate_state(None, count=False)
        headers.append(("WWW-Authenticate", 'Bearer realm="getbill"'))
        return _error(exc.status, exc.message, exc.details, headers)
    if sim.take_burst_429():
        headers, _ = sim.rate_state(token.client_id, count=False)
        return _rate_limited(sim, sim.config.burst_retry_after_s, headers)
    headers, wait = sim.rate_state(token.client_id, count=True)
    if wait is not None:
        return _rate_limited(sim, math.ceil(wait), headers)
    if sim.config.error_rate > 0 and sim.chance("api-5xx") < sim.config.error_rate:
        status = INJECTED_5XX[int(sim.chance("api-5xx-code") * len(INJECTED_5XX))]
        return _error(
            status,
            "Internal server error" if status == 500 else "Service unavailable",
            None,
            headers,
        )
    if method != "GET":
        return _error(405, "Method not allowed", None, headers)
    base = sim.base_url or _request_base(environ)
    try:
        body = _route_read(sim, environ, token, sub, base)
    except ApiFailure as exc:
        return _error(exc.status, exc.message, exc.details, headers)
    return _json(200, body, headers)


def _rate_limited(sim: SimulatorState, retry_after: int, headers: Headers) -> Response:
    headers = [(k, "0" if k == "X-RateLimit-Remaining" else v) for k, v in headers]
    details = {
        "retry_after": int(retry_after),
        "limit": int(sim.config.rate_limit),
        "reset_time": rfc3339z(sim.clock() + retry_after),
    }
    return _error(429, "Rate limit exceeded. Please try again later.", details, headers)


def _request_base(environ: dict[str, Any]) -> str:
    scheme = environ.get("wsgi.url_scheme", "http")
    host = (
        environ.get("HTTP_HOST")
        or f"{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT', '80')}"
    )
    return f"{scheme}://{host}"


def _need_scope(token: Token, scope: str) -> None:
    if scope not in token.scopes:
        raise ApiFailure(403, f'Required scope "{scope}" not found in token', {"scope": [scope]})


def _own_debt(sim: SimulatorState, token: Token, debt_id: str) -> None:
    if debt_id not in sim.data.debts:
        raise ApiFailure(404, "Debt not found", {"debt_id": ["not found"]})
    client = sim.client_spec(token.client_id)
    if client is None or sim.data.company_of[debt_id] != client.company:
        raise ApiFailure(403, "Access denied to this debt")


def _route_read(
    sim: SimulatorState, environ: dict[str, Any], token: Token, sub: str, base: str
) -> dict[str, Any]:
    query = parse_query(environ)
    parts = [unquote(p) for p in sub.strip("/").split("/")] if sub.strip("/") else []
    client = sim.client_spec(token.client_id)
    company = client.company if client else ""
    if parts[:1] == ["followups"]:
        _need_scope(token, FOLLOWUPS_SCOPE)
        if len(parts) == 3 and parts[1] == "debt":
            _own_debt(sim, token, parts[2])
            ids = sim.followup_ids(parts[2])
            body = _page(sim, query, ids, lambda fid: sim.render_followup(fid, base))
            meta = body["pagination"]
            if meta["page"] == 1 and meta["pages"] > 1:
                # Served first, inserted after: the client reads page 2 of a shifted listing.
                count = sim.take_listing_insertion()
                if count:
                    sim.insert_at_top(parts[2], count)
            return body
        if len(parts) == 2:
            fid = parts[1]
            record = sim.data.followups.get(fid)
            if record is None:
                raise ApiFailure(404, "Followup not found", {"id": ["not found"]})
            _own_debt(sim, token, record["debt_id"])
            return {"error": False, "message": "Success", "data": sim.render_followup(fid, base)}
        if len(parts) == 1:
            ids = _filter_followups(sim, query, company)
            return _page(sim, query, ids, lambda fid: sim.render_followup(fid, base))
    if parts[:1] == ["debts"]:
        _need_scope(token, DEBTS_SCOPE)
        if len(parts) == 1:
            return _page(sim, query, sim.debt_ids(company), sim.debt)
        if len(parts) == 2:
            _own_debt(sim, token, parts[1])
            return {"error": False, "message": "Success", "data": sim.debt(parts[1])}
    raise ApiFailure(404, "Not found")


def _filter_followups(sim: SimulatorState, query: dict[str, list[str]], company: str) -> list[str]:
    status = _first(query, "status") or None
    ftype = _first(query, "type") or None
    if status and status not in FOLLOWUP_STATUSES:
        raise ApiFailure(
            400, "Invalid status", {"status": [f"must be one of {', '.join(FOLLOWUP_STATUSES)}"]}
        )
    if ftype and ftype not in FOLLOWUP_TYPES:
        raise ApiFailure(
            400, "Invalid type", {"type": [f"must be one of {', '.join(FOLLOWUP_TYPES)}"]}
        )
    bounds: dict[str, date | None] = {}
    for name in ("from", "to"):
        value = _first(query, name)
        try:
            bounds[name] = date.fromisoformat(value) if value else None
        except ValueError:
            raise ApiFailure(400, f"Invalid {name} date", {name: ["expected YYYY-MM-DD"]}) from None
    wanted = FollowupQuery(
        company=company,
        order=sim.config.followups_order,
        status=status,
        type=ftype,
        debt_id=_first(query, "debt_id") or None,
        first_day=bounds["from"],
        last_day=bounds["to"],
    )
    return sim.list_followups(wanted)


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _positive_int(query: dict[str, list[str]], name: str, default: int) -> int:
    raw = _first(query, name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ApiFailure(400, f"Invalid {name}", {name: ["must be a positive integer"]})
    return value


def _page(
    sim: SimulatorState, query: dict[str, list[str]], ids: list[str], render: Callable[[str], Any]
) -> dict[str, Any]:
    """One page of ``ids`` in the documented list shape, with the pagination fault knobs."""
    page = _positive_int(query, "page", 1)
    limit = min(_positive_int(query, "limit", DEFAULT_LIMIT), MAX_LIMIT)
    total = len(ids)
    start = (page - 1) * limit
    if sim.config.duplicate_across_pages and page > 1:
        start -= 1  # repeat the previous page's last item, as an insertion meanwhile would
    window = ids[start : start + limit]
    if sim.config.unstable_total:
        total += page - 1
    return {
        "error": False,
        "data": [render(i) for i in window],
        "pagination": {
            "total": total,
            "page": page,
            "limit": limit,
            "pages": math.ceil(total / limit),
        },
    }


# ---------------------------------------------------------------------------- media


def _media(sim: SimulatorState, environ: dict[str, Any], method: str, path: str) -> Response:
    if sim.config.delay_s > 0:
        time.sleep(sim.config.delay_s)
    found = sim.media_spec_for_path(path)
    if found is None:
        return s3_error(404, "NoSuchKey", "The specified key does not exist.", path)
    problem = sim.verify_media(path, parse_query(environ))
    if problem is not None:
        return s3_error(problem[0], problem[1], problem[2], path)
    fid, kind, _spec = found
    if sim.config.media_error_rate > 0 and sim.chance("media-5xx") < sim.config.media_error_rate:
        return s3_error(
            500, "InternalError", "We encountered an internal error. Please try again.", path
        )
    hit = sim.media_hit(path)
    cfg = sim.config
    if hit <= cfg.html_media_first or (
        cfg.html_media_rate > 0 and sim.chance("media-html") < cfg.html_media_rate
    ):
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(HTML_ERROR_PAGE))),
        ]
        return Response(200, headers, [] if method == "HEAD" else [HTML_ERROR_PAGE])
    source = sim.media_source(fid, kind)
    start, stop, status = 0, source.size, 200
    headers = [
        ("Content-Type", source.content_type),
        ("Accept-Ranges", "bytes"),
    ]
    wanted = _parse_range(environ.get("HTTP_RANGE", ""), source.size)
    if wanted == "invalid":
        return s3_error(416, "InvalidRange", "The requested range is not satisfiable", path)
    if isinstance(wanted, tuple):
        start, stop = wanted
        status = 206
        headers.append(("Content-Range", f"bytes {start}-{stop - 1}/{source.size}"))
    headers.append(("Content-Length", str(stop - start)))
    if method == "HEAD":
        return Response(status, headers, [])
    truncate = hit <= cfg.truncate_media_first or (
        cfg.truncate_media_rate > 0 and sim.chance("media-truncate") < cfg.truncate_media_rate
    )
    if truncate:
        cut = start + int((stop - start) * cfg.truncate_fraction)
        return Response(status, headers, source.iter_range(start, cut))
    return Response(status, headers, source.iter_range(start, stop))


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` -> (start, stop); None if absent."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None  # like S3: ignore what we do not support, send everything
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            n = int(last)
            start, stop = max(0, size - n), size
        else:
            start = int(first)
            stop = min(size, int(last) + 1) if last else size
    except ValueError:
        return None
    if start >= size or stop <= start:
        return "invalid"
    return start, stop
