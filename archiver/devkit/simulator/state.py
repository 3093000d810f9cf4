"""The simulator's state and the wire-level pieces its handlers share.

:class:`SimulatorState` holds the dataset, issued tokens, rate windows, fault counters and the
URL signing secret; :mod:`.routes` answers requests from it, :mod:`.app` wraps both in a WSGI
application. The behaviour choices are listed in :mod:`archiver.devkit.simulator.app`.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import html
import json
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode

from archiver.devkit.simulator.config import (
    FOLLOWUP_STATUSES,
    FOLLOWUP_TYPES,
    ClientSpec,
    SimulatorConfig,
)
from archiver.devkit.simulator.data import (
    PLAUSIBLE_STATUSES,
    Dataset,
    MediaSpec,
    build_dataset,
    iso,
    make_followup,
)
from archiver.devkit.simulator.listing import FollowupQuery, Listings
from archiver.devkit.simulator.media import MediaSource, audio_source, letter_pdf, pdf_source
from archiver.devkit.simulator.webhooks import WebhookSender, event_type_for

API_PREFIX = "/external-api/v1"
AUTH_MESSAGE = "Authentication credentials are missing or invalid"
MEDIA_DIRS = {"audio": "recordings", "pdf": "letters"}
KIND_OF_DIR = {v: k for k, v in MEDIA_DIRS.items()}
HTML_ERROR_PAGE = (
    b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head>"
    b"<body><h1>Service Unavailable</h1><p>The server is temporarily busy. Try again later.</p>"
    b"</body></html>"
)

Headers = list[tuple[str, str]]


class RequestRecord(NamedTuple):
    """One request the simulator answered (the path has no query string)."""

    method: str
    path: str
    status: int


@dataclass
class Token:
    """A bearer token the simulator issued (or a static one from the config)."""

    client_id: str
    scopes: frozenset[str]
    expires_at: float | None  # None: static token


@dataclass
class Response:
    """What a handler answers: status, headers and the body chunks."""

    status: int
    headers: Headers = field(default_factory=list)
    body: Iterable[bytes] = ()


def json_body(obj: Any) -> bytes:
    """``obj`` as UTF-8 JSON bytes (non-ASCII kept as is)."""
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def plain_copy(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists, scalars), several times faster than
    ``copy.deepcopy``: serving a page of 100 records copies each of them."""
    if isinstance(value, dict):
        return {k: plain_copy(v) if isinstance(v, dict | list) else v for k, v in value.items()}
    if isinstance(value, list):
        return [plain_copy(v) for v in value]
    return value


def rfc3339z(ts: float) -> str:
    """Unix seconds as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiFailure(Exception):
    """Raised inside a handler to answer with the documented error shape."""

    def __init__(self, status: int, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or {}


class SimulatorState:
    """The simulator's data and bookkeeping: dataset, tokens, rate windows, faults, signing.

    Thread-safe. :class:`archiver.devkit.simulator.app.Simulator` adds the WSGI application;
    the request handlers (:mod:`.routes`) read and update this state.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        base_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.base_url = base_url.rstrip("/") if base_url else None
        self.clock = clock
        self.request_log: list[RequestRecord] = []
        self._lock = threading.RLock()
        self._data: Dataset = build_dataset(self.config)
        self._extra_rng = random.Random(f"getbill-sim-extra:{self.config.seed}")
        self._insert_rng = random.Random(f"getbill-sim-insert:{self.config.seed}")
        seed_secret = f"getbill-sim-signing:{self.config.seed}"
        self._secret = (self.config.signing_secret or seed_secret).encode()
        self._tokens: dict[str, Token] = {}
        self._token_counter = 0
        self._windows: dict[str, deque[float]] = {}
        self._chance_counters: dict[str, int] = {}
        self._media_hits: dict[str, int] = {}
        self._pdf_cache: dict[str, bytes] = {}
        self._listings = Listings()
        self.webhooks = WebhookSender(self.config)

    # ------------------------------------------------------------------ public accessors

    def debt_ids(self, company: str | None = "A") -> list[str]:
        """Debt ids in API order, of one company (``"A"``, ``"B"``) or all (None)."""
        with self._lock:
            return [d for d, c in self._data.company_of.items() if company in (None, c)]

    def debt(self, debt_id: str) -> dict[str, Any]:
        """A copy of one debt record, exactly as the API serves it."""
        with self._lock:
            return plain_copy(self._data.debts[debt_id])

    def followup_ids(self, debt_id: str) -> list[str]:
        """Ids of a debt's followups in API order."""
        with self._lock:
            return list(self._data.by_debt[debt_id])

    def list_followups(self, query: FollowupQuery) -> list[str]:
        """Ids ``GET /followups`` lists for ``query``, in its order (see :mod:`.listing`)."""
        with self._lock:
            return list(self._listings.followups(self._data, query))

    def followups_of(self, debt_id: str) -> list[dict[str, Any]]:
        """A debt's followups as the API would serve them now (freshly signed URLs)."""
        with self._lock:
            return [self.render_followup(fid) for fid in self._data.by_debt[debt_id]]

    def followup(self, followup_id: str) -> dict[str, Any]:
        """One followup as the API would serve it now."""
        with self._lock:
            return self.render_followup(followup_id)

    def company_of(self, debt_id: str) -> str:
        return self._data.company_of[debt_id]

    def media_source(self, followup_id: str, kind: str) -> MediaSource:
        """The generator of one media file (``kind`` is ``"audio"`` or ``"pdf"``)."""
        with self._lock:
            spec = self._data.media[(followup_id, kind)]
            record = self._data.followups[followup_id]
            debt = self._data.debts[record["debt_id"]]
            if spec.fmt == "pdf":
                pdf = self._pdf_cache.get(followup_id)
                if pdf is None:
                    pdf = letter_pdf(record, debt)
                    self._pdf_cache[followup_id] = pdf
                return pdf_source(pdf)
        assert spec.size is not None
        title = f"Call recording {followup_id}"
        return audio_source(self.config.seed, followup_id, spec.fmt, spec.size, title)

    def media_bytes(self, followup_id: str, kind: str) -> bytes:
        """The whole media file (fine for normal sizes; use :meth:`media_stream` for huge)."""
        return self.media_source(followup_id, kind).read_all()

    def media_stream(self, followup_id: str, kind: str) -> Iterator[bytes]:
        """The media file as chunks of 64 KiB."""
        return self.media_source(followup_id, kind).iter_range()

    def media_sha256(self, followup_id: str, kind: str) -> str:
        """Hex SHA-256 of a media file, computed by streaming."""
        digest = hashlib.sha256()
        for chunk in self.media_stream(followup_id, kind):
            digest.update(chunk)
        return digest.hexdigest()

    def media_kinds(self, followup_id: str) -> list[str]:
        """The media kinds a followup has (``[]``, ``["audio"]`` or ``["pdf"]``)."""
        return [k for k in ("audio", "pdf") if (followup_id, k) in self._data.media]

    def requests_to(self, prefix: str, method: str | None = None) -> list[RequestRecord]:
        """Logged requests whose path starts with ``prefix``."""
        with self._lock:
            return [
                r
                for r in self.request_log
                if r.path.startswith(prefix) and method in (None, r.method)
            ]

    def issue_token(
        self, client_id: str = "demo-client", scopes: Iterable[str] | None = None
    ) -> str:
        """A bearer token for a configured client, as ``POST /token`` would issue."""
        client = self.config.client(client_id)
        if client is None:
            raise KeyError(client_id)
        granted = frozenset(client.scopes if scopes is None else scopes)
        with self._lock:
            self._token_counter += 1
            raw = f"{client_id}:{self._token_counter}".encode()
            token = hmac.new(self._secret, raw, hashlib.sha256).hexdigest()[:40]
            self._tokens[token] = Token(client_id, granted, self.clock() + self.config.token_ttl_s)
        return token

    # ------------------------------------------------------------------ mutations

    def add_followup(
        self,
        debt_id: str,
        type: str = "call",  # noqa: A002 - the API's field name
        status: str = "deal_found",
        *,
        audio_size: int | None = None,
        audio_format: str = "mp3",
        when: datetime | None = None,
        media: bool | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Append a new followup to a debt (new activity); returns the stored record.

        It is dated ``when`` (an aware datetime; default: now on the simulator's clock, to the
        second): ``call_date`` for a call that took place, ``scheduled_at`` a little before.
        ``media`` None gives a medium as type and status imply (a recording for a call or
        voicemail that took place, a letter for a sent postmail); True forces one (``type``
        call, voicemail or postmail), False none. ``audio_size`` (calls, voicemails) forces a
        recording of that many bytes, generated as a stream, so a 500 MB file costs no memory.
        ``fields`` override record fields.

        Example: ``sim.add_followup(debt_id)`` (a call dated now, with a recording);
        ``sim.add_followup(debt_id, media=False)`` (the same call, no recording).
        """
        if type not in FOLLOWUP_TYPES:
            raise ValueError(f"unknown followup type {type!r}")
        if status not in FOLLOWUP_STATUSES:
            raise ValueError(f"unknown followup status {status!r}")
        with self._lock:
            debt = self._data.debts[debt_id]
            moment = when or datetime.fromtimestamp(int(self.clock()), UTC)
            record = make_followup(
                self._data,
                self._extra_rng,
                self.config,
                debt,
                ftype=type,
                status=status,
                when=moment,
                audio_size=audio_size,
                audio_format=audio_format if audio_size is not None else None,
                media=media,
            )
            record.update(fields)
            self._data.touch()
            self._notify("followup.created", record["id"])
            return copy.deepcopy(record)

    def insert_at_top(self, debt_id: str, count: int) -> list[str]:
        """Insert ``count`` followups at the top of a debt's listing; returns their ids.

        They are dated before the debt's oldest followup (activity recorded late), so the
        listing stays oldest first while every later page shifts by ``count``. The records
        come from a seeded random source of their own: the same seed and the same calls give
        the same followups.
        """
        rng = self._insert_rng
        with self._lock:
            debt = self._data.debts[debt_id]
            ids = self._data.by_debt[debt_id]
            oldest = self._data.followups[ids[0]]["scheduled_at"] if ids else None
            start = datetime.fromisoformat(oldest) if oldest else datetime(2025, 1, 1, tzinfo=UTC)
            added: list[str] = []
            for k in range(count):
                ftype = rng.choice(FOLLOWUP_TYPES)
                record = make_followup(
                    self._data,
                    rng,
                    self.config,
                    debt,
                    ftype=ftype,
                    status=rng.choice(PLAUSIBLE_STATUSES[ftype]),
                    # 12 h apart: more than the jitter of scheduled_at, so the order holds.
                    when=start - timedelta(days=1, hours=12 * (count - k)),
                )
                added.append(record["id"])
            # make_followup appends; the newest insertions go to the very top.
            del ids[len(ids) - count :]
            ids[:0] = added
            self._data.touch()
            for followup_id in added:
                self._notify("followup.created", followup_id)
            return added

    def take_listing_insertion(self) -> int:
        """How many followups to insert into the listing being read now (0: none); the
        ``insert_during_listing`` budget is decremented by as many."""
        with self._lock:
            count = max(0, min(self.config.insert_during_listing, self.config.insert_batch))
            self.config.insert_during_listing -= count
            return count

    def remove_followup(self, followup_id: str) -> None:
        """Drop a followup from its debt's listing (as when the platform deletes it)."""
        with self._lock:
            record = self._data.followups.pop(followup_id)
            self._data.by_debt[record["debt_id"]].remove(followup_id)
            self._data.touch()

    def set_followup_status(self, followup_id: str, status: str) -> None:
        """Change a followup's status (as the platform does when a contact progresses)."""
        if status not in FOLLOWUP_STATUSES:
            raise ValueError(f"unknown followup status {status!r}")
        self.update_followup(followup_id, status=status)

    def update_followup(self, followup_id: str, **fields: Any) -> None:
        """Overwrite fields of a stored followup (signed URL fields excepted).

        Listings follow: a new ``call_date``/``scheduled_at`` moves it in date order and
        through the ``from``/``to`` filters, a new status or type through those filters.
        """
        with self._lock:
            record = self._data.followups[followup_id]
            changes = {
                k: {"from": plain_copy(record.get(k)), "to": plain_copy(v)}
                for k, v in fields.items()
                if record.get(k) != v
            }
            record.update(fields)
            self._data.touch()
            if changes:
                self._notify(event_type_for(changes), followup_id, changes)

    def set_email_counters(
        self,
        followup_id: str,
        opens: int,
        clicks: int = 0,
        first_opened_at: datetime | None = None,
    ) -> None:
        """Set an email followup's open/click counters, keeping its fields consistent.

        ``email_opened``/``email_clicked`` follow the counts; ``email_first_opened_at`` is
        ``first_opened_at``, else kept if already set, else now (None when ``opens`` is 0).
        """
        if opens < 0 or clicks < 0:
            raise ValueError("counters cannot be negative")
        with self._lock:
            record = self._data.followups[followup_id]
            if record["type"] != "email":
                raise ValueError(f"followup {followup_id} is a {record['type']}, not an email")
            if not opens:
                first = None
            elif first_opened_at is not None:
                first = iso(first_opened_at)
            else:
                now = datetime.fromtimestamp(int(self.clock()), UTC)
                first = record["email_first_opened_at"] or iso(now)
            self.update_followup(
                followup_id,
                email_opened=opens > 0,
                email_open_count=opens,
                email_first_opened_at=first,
                email_clicked=clicks > 0,
                email_click_count=clicks,
            )

    def _notify(
        self, event_type: str, followup_id: str, changes: dict[str, Any] | None = None
    ) -> None:
        """Post a followup event when webhooks are on (the POST is sent in the background)."""
        if self.config.webhook_url:
            self.webhooks.send(event_type, self.render_followup(followup_id), changes)

    # ------------------------------------------------------------------ signing

    def signed_url(self, followup_id: str, kind: str, base_url: str | None = None) -> str:
        """A presigned-style URL for one media file, valid ``config.url_ttl_s`` from now."""
        spec = self._data.media[(followup_id, kind)]
        path = f"/media/{MEDIA_DIRS[kind]}/{followup_id}.{spec.fmt}"
        signed_at = int(self.clock())
        expires = int(self.config.url_ttl_s)
        amz_date = datetime.fromtimestamp(signed_at, UTC).strftime("%Y%m%dT%H%M%SZ")
        query = urlencode(
            {
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Credential": f"SIMULATOR/{amz_date[:8]}/eu-west-3/s3/aws4_request",
                "X-Amz-Date": amz_date,
                "X-Amz-Expires": str(expires),
                "X-Amz-SignedHeaders": "host",
                "X-Amz-Signature": self._signature(path, amz_date, str(expires)),
            }
        )
        base = (base_url or self.base_url or "http://127.0.0.1").rstrip("/")
        return f"{base}{path}?{query}"

    def _signature(self, path: str, amz_date: str, expires: str) -> str:
        msg = f"{path}\n{amz_date}\n{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def render_followup(self, followup_id: str, base_url: str | None = None) -> dict[str, Any]:
        """The followup record with freshly signed media URLs (what the API serves)."""
        with self._lock:
            record = plain_copy(self._data.followups[followup_id])
            kinds = self.media_kinds(followup_id)
            for kind in kinds:
                field_name = "audio_url" if kind == "audio" else "pdf_url"
                record[field_name] = self.signed_url(followup_id, kind, base_url)
            if kinds:
                expiry = int(self.clock()) + int(self.config.url_ttl_s)
                record["media_urls_expire_at"] = iso(datetime.fromtimestamp(expiry, UTC))
            return record

    # ------------------------------------------------------------------ helpers for routes

    def chance(self, kind: str) -> float:
        """A deterministic number in [0, 1) for the next request of ``kind`` (fault shares)."""
        with self._lock:
            n = self._chance_counters.get(kind, 0)
            self._chance_counters[kind] = n + 1
        digest = hashlib.sha256(f"{self.config.seed}:{kind}:{n}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def media_hit(self, path: str) -> int:
        """Count a request for one media path; returns its 1-based number."""
        with self._lock:
            self._media_hits[path] = self._media_hits.get(path, 0) + 1
            return self._media_hits[path]

    def take_burst_429(self) -> bool:
        with self._lock:
            if self.config.burst_429 > 0:
                self.config.burst_429 -= 1
                return True
            return False

    def authenticate(self, environ: dict[str, Any]) -> Token:
        """The token of the request, or :class:`ApiFailure` 401."""
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiFailure(401, AUTH_MESSAGE, {"authorization": ["Bearer token is missing"]})
        client_id = self.config.static_tokens.get(token)
        if client_id is not None:
            client = self.config.client(client_id)
            if client is not None:
                return Token(client_id, frozenset(client.scopes), None)
        with self._lock:
            found = self._tokens.get(token)
        if found is None:
            raise ApiFailure(401, AUTH_MESSAGE, {"token": ["Token is invalid"]})
        if found.expires_at is not None and self.clock() >= found.expires_at:
            raise ApiFailure(401, AUTH_MESSAGE, {"token": ["Token has expired"]})
        return found

    def client_spec(self, client_id: str) -> ClientSpec | None:
        return self.config.client(client_id)

    def rate_state(self, client_id: str | None, count: bool) -> tuple[Headers, float | None]:
        """Rate-limit headers for a client; with ``count``, record one request.

        Returns the headers and, when the window is full, the seconds until a slot frees.
        """
        now = self.clock()
        limit = int(self.config.rate_limit)
        window = int(self.config.rate_window_s)
        with self._lock:
            hits = self._windows.setdefault(client_id or "", deque())
            while hits and hits[0] <= now - window:
                hits.popleft()
            exceeded = client_id is not None and count and len(hits) >= limit
            if client_id is not None and count and not exceeded:
                hits.append(now)
            reset = (hits[0] + window) if hits else now + window
            remaining = max(0, limit - len(hits))
        headers = [
            ("X-RateLimit-Limit", str(limit)),
            ("X-RateLimit-Remaining", str(remaining)),
            ("X-RateLimit-Reset", str(math.ceil(reset))),
            ("X-RateLimit-Window", str(window)),
        ]
        return headers, (max(1.0, reset - now) if exceeded else None)

    def verify_media(self, path: str, query: dict[str, list[str]]) -> tuple[int, str, str] | None:
        """None if the signed query is valid now, else (status, S3 code, message)."""

        def one(name: str) -> str:
            values = query.get(name) or [""]
            return values[0]

        amz_date, expires, signature = (
            one("X-Amz-Date"),
            one("X-Amz-Expires"),
            one("X-Amz-Signature"),
        )
        if not (amz_date and expires and signature):
            return (
                403,
                "AccessDenied",
                "Query-string authentication requires the Signature, Expires and Date parameters",
            )
        expected = self._signature(path, amz_date, expires)
        if not hmac.compare_digest(expected, signature):
            return (
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        try:
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            deadline = signed_at.timestamp() + int(expires)
        except ValueError:
            return 403, "AccessDenied", "Invalid date or expiry"
        if self.clock() >= deadline:
            return 403, "AccessDenied", "Request has expired"
        return None

    def media_spec_for_path(self, path: str) -> tuple[str, str, MediaSpec] | None:
        """(followup id, kind, spec) for ``/media/recordings/{id}.{ext}``-style paths."""
        parts = path.split("/")
        if len(parts) != 4 or parts[1] != "media" or parts[2] not in KIND_OF_DIR:
            return None
        kind = KIND_OF_DIR[parts[2]]
        fid, dot, ext = parts[3].rpartition(".")
        with self._lock:
            spec = self._data.media.get((fid, kind)) if dot else None
        if spec is None or spec.fmt != ext:
            return None
        return fid, kind, spec

    @property
    def data(self) -> Dataset:
        """The live dataset (read-only use; hold no reference across mutations)."""
        return self._data


def s3_error(status: int, code: str, message: str, resource: str) -> Response:
    """An S3-style XML error response."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{html.escape(message)}</Message>"
        f"<Resource>{html.escape(resource)}</Resource>"
        "<RequestId>SIMULATOR</RequestId></Error>"
    ).encode()
    headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
    return Response(status, headers, [body])


def parse_query(environ: dict[str, Any]) -> dict[str, list[str]]:
    """The query string of a WSGI request, blank values kept."""
    return parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)


__all__ = [
    "API_PREFIX",
    "HTML_ERROR_PAGE",
    "ApiFailure",
    "Headers",
    "RequestRecord",
    "Response",
    "SimulatorState",
    "Token",
    "json_body",
    "parse_query",
    "plain_copy",
    "rfc3339z",
    "s3_error",
]
