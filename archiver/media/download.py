"""Download one signed media URL (call recording, PDF letter) into a temp file, as evidence.

The only module that sends requests to media hosts, so the only one that translates httpx
errors into the :class:`~archiver.errors.MediaError` tree (:mod:`archiver.media.transport`
only decides where its connections may go).

What one :meth:`MediaDownloader.download` does, cheap checks first:

1. refresh the signed URL (``refresh(ref)``, i.e. ``GET /followups/{id}``) when it is past or
   within ``expiry_margin_seconds`` of ``expires_at``;
2. :func:`~archiver.media.urls.check_media_url`: https only (plain http for loopback hosts
   only), host on the allowlist, no userinfo;
3. GET without following redirects; each ``Location`` passes :func:`check_media_url` too;
4. stream the body as sent (no Content-Encoding undone: the bytes hashed and stored are the
   bytes on the wire) in ``chunk_size`` pieces to a temp file while hashing SHA-256 — the body
   is never held in memory; the temp file is deleted the moment anything goes wrong. A body
   over ``max_media_bytes`` (by its Content-Length, or as it streams) is refused;
5. refuse HTML / XML error pages served with 200, empty or truncated bodies, and content whose
   sniffed type does not fit the media kind.

Failures are sorted in three families (see ``_fail_status`` and the loop of ``download``):

* retried with exponential backoff and jitter, at most ``max_attempts`` failures: 5xx, 408,
  429, timeouts, connection errors, truncated / empty / HTML / XML-error bodies;
* answered with a URL refresh, at most ``max_refreshes`` per media: an expired URL (a 403 that
  says so, or any 403 once ``expires_at`` has passed). Other 403 and 404/410 get *one* refresh
  too — a freshly signed URL is the only thing that could fix them (rotated signing key, moved
  object) — and then fail as :class:`MediaError`;
* failed at once: a host, scheme or redirect outside the allowlist, a host resolving to an
  internal address, too many redirects, other 4xx, content of the wrong type, a body over
  ``max_media_bytes``.

Which addresses a media host may resolve to is checked where connections are opened: build
``http`` with :func:`archiver.media.transport.media_client`.

Errors and events never carry a signed query string: URLs go through ``strip_query``.
Media requests never carry the client's credentials either (no ``Authorization``, no cookies):
the presigned URL is the credential, and a getbill bearer token must not travel to S3.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal, NoReturn

import httpx

from archiver.common.backoff import backoff_delay
from archiver.common.redact import scrub_secrets, strip_query
from archiver.errors import (
    MediaContentError,
    MediaError,
    MediaExpiredError,
    MediaHostNotAllowedError,
)
from archiver.getbill.records import MediaRef
from archiver.media.sniff import (
    SNIFF_BYTES,
    expected_for,
    extension_for,
    looks_like_html,
    looks_like_xml_error,
    sniff,
    xml_error_code,
)
from archiver.media.types import (
    DownloadedMedia,
    DownloadEvent,
    DownloadSettings,
    EventKind,
    RefreshMedia,
)
from archiver.media.urls import check_media_url, expires_within, s3_says_expired, url_query

__all__ = ["MediaDownloader"]

# --------------------------------------------------------------------------------------------
# The downloader

_ERROR_BODY_LIMIT = 64 * 1024  # bytes of a 4xx body read to tell "expired" from other refusals
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_EXPIRED_TEXT = re.compile(rb"request has expired|expiredtoken|token has expired", re.IGNORECASE)

_Action = Literal["retry", "refresh", "refresh_once", "fail"]


class _AttemptFailed(Exception):
    """Internal: one try failed; ``action`` says what the loop in ``download`` does next."""

    def __init__(self, error: MediaError, action: _Action) -> None:
        super().__init__(error.message)
        self.error = error
        self.action = action


class MediaDownloader:
    """Fetches :class:`MediaRef` URLs into checked temp files. See the module docstring.

    ``http`` should be a client dedicated to media, built by
    :func:`~archiver.media.transport.media_client` (it checks the addresses it connects to);
    its auth and cookies are never sent. ``clock`` (unix seconds), ``sleep`` and ``rng`` are
    injectable for tests.
    One instance may serve several worker threads: per-download state lives in each call, and
    ``on_event`` is then called from those threads.
    """

    def __init__(
        self,
        http: httpx.Client,
        settings: DownloadSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        on_event: Callable[[DownloadEvent], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.http = http
        self.settings = settings or DownloadSettings()
        self.clock = clock
        self.sleep = sleep
        self.on_event = on_event
        self.rng = rng or random.Random()

    # -- public ---------------------------------------------------------------------------

    def download(self, ref: MediaRef, refresh: RefreshMedia) -> DownloadedMedia:
        """Fetch ``ref`` into a temp file and check it; refresh the URL when it expires.

        Raises :class:`MediaHostNotAllowedError` (never retried), :class:`MediaExpiredError`
        (refresh budget spent), :class:`MediaContentError` or :class:`MediaError` (retries
        spent or not retryable), each with debt_id, followup_id, kind and the URL without its
        query string. Errors raised by ``refresh`` itself (API errors) propagate unchanged.
        """
        s = self.settings
        state = _State(ref=ref)
        self._emit("started", state)
        while True:
            if self._expiring(state.ref) and state.refreshes < s.max_refreshes:
                self._refresh(state, refresh, "URL expires soon")
            try:
                check_media_url(state.ref.url, s)
                state.attempts += 1
                return self._attempt(state)
            except MediaHostNotAllowedError as exc:
                # Refused outright (also for a redirect target): never retried.
                for key, value in self._context(state).items():
                    exc.context.setdefault(key, value)
                raise
            except _AttemptFailed as failed:
                error = failed.error
                if failed.action == "retry":
                    state.failures += 1
                    if state.failures >= s.max_attempts:
                        error.message = f"{error.message}; gave up after {state.failures} tries"
                        raise error from None
                    self._backoff(state, error.message)
                elif failed.action in ("refresh", "refresh_once"):
                    once = failed.action == "refresh_once"
                    if state.refreshes >= s.max_refreshes or (once and state.refreshed_for_denial):
                        raise error from None
                    state.refreshed_for_denial |= once
                    self._refresh(state, refresh, error.message)
                else:
                    raise error from None

    # -- one try --------------------------------------------------------------------------

    def _attempt(self, state: _State) -> DownloadedMedia:
        url = state.ref.url
        for _hop in range(self.settings.max_redirects + 1):
            with self._open(state, url) as response:
                if response.status_code in _REDIRECT_STATUSES and "location" in response.headers:
                    target = str(response.url.join(response.headers["location"]))
                    # A redirect outside the allowlist is refused outright, never retried.
                    check_media_url(target, self.settings)
                    url = target
                    continue
                if not response.is_success:
                    self._fail_status(state, response, url)
                return self._stream_to_file(state, response, url)
        self._fail(state, MediaError, f"more than {self.settings.max_redirects} redirects", "fail")

    @contextlib.contextmanager
    def _open(self, state: _State, url: str) -> Iterator[httpx.Response]:
        """Send the GET (streaming) and translate transport errors; closes the response."""
        try:
            request = self.http.build_request(
                "GET",
                url,
                # identity: Content-Length then counts exactly the bytes we store.
                headers={"Accept-Encoding": "identity"},
                timeout=self.settings.timeout_seconds,
            )
            for name in ("authorization", "cookie"):
                request.headers.pop(name, None)
            response = self.http.send(request, stream=True, follow_redirects=False, auth=None)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            self._fail_transport(state, exc, url)
        try:
            yield response
        except httpx.RemoteProtocolError as exc:
            # Over a real socket a body shorter than its Content-Length ends this way.
            detail = scrub_secrets(str(exc), (url_query(url),))
            self._fail(state, MediaContentError, f"truncated body ({detail})", "retry", url=url)
        except httpx.HTTPError as exc:  # raised while reading the body
            self._fail_transport(state, exc, url)
        finally:
            response.close()

    def _fail_transport(
        self, state: _State, exc: httpx.HTTPError | httpx.InvalidURL, url: str
    ) -> NoReturn:
        detail = type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            message = f"timed out after {self.settings.timeout_seconds:g}s ({detail})"
        elif isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
            self._fail(state, MediaError, f"invalid media URL ({detail})", "fail", url=url)
        else:
            message = f"transport error ({detail}: {scrub_secrets(str(exc), (url_query(url),))})"
        self._fail(state, MediaError, message, "retry", url=url)

    def _fail_status(self, state: _State, response: httpx.Response, url: str) -> NoReturn:
        status = response.status_code
        if status in _RETRY_STATUSES or status >= 500:
            self._fail(
                state, MediaError, f"server answered {status}", "retry", url=url, status=status
            )
        body = _read_limited(response, _ERROR_BODY_LIMIT)
        code = xml_error_code(body)
        extra: dict[str, object] = {"status": status, "s3_code": code}
        if status == 403:
            now = self.clock()
            if (
                _EXPIRED_TEXT.search(body)
                or (code == "AccessDenied" and s3_says_expired(body, url, now))
                or expires_within(state.ref, now, 0)
            ):
                self._fail(
                    state, MediaExpiredError, "signed URL has expired", "refresh", url=url, **extra
                )
            self._fail(state, MediaError, "access denied (403)", "refresh_once", url=url, **extra)
        if status in (404, 410):
            self._fail(
                state, MediaError, f"media not found ({status})", "refresh_once", url=url, **extra
            )
        self._fail(state, MediaError, f"server refused with {status}", "fail", url=url, **extra)

    def _stream_to_file(self, state: _State, response: httpx.Response, url: str) -> DownloadedMedia:
        s = self.settings
        declared_type = response.headers.get("content-type")
        # Stored as sent: a server that ignores our Accept-Encoding: identity gets its encoded
        # bytes archived (and, not being media, refused by the sniff), never a decoded copy
        # of unbounded size. Content-Length and the size limit count those same bytes.
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        total = _content_length(response)
        if total is not None and total > s.max_media_bytes:
            self._fail(
                state,
                MediaContentError,
                f"media of {total} bytes (Content-Length) is over the limit of "
                f"{s.max_media_bytes} bytes (ARCHIVER_MAX_MEDIA_BYTES)",
                "fail",
                url=url,
                max_bytes=s.max_media_bytes,
            )
        temp_dir = str(s.temp_dir) if s.temp_dir is not None else None
        file: IO[bytes] = tempfile.NamedTemporaryFile(  # noqa: SIM115 - cleanup below
            dir=temp_dir, prefix="archiver-media-", suffix=".part", delete=False
        )
        path = Path(file.name)
        kept = False
        try:
            digest = hashlib.sha256()
            size = 0
            head = b""
            sniffed: tuple[str, str] | None = None
            for chunk in blocks(response.iter_raw(), s.chunk_size):
                if sniffed is None:
                    head += bytes(chunk[: SNIFF_BYTES - len(head)])
                    if len(head) >= SNIFF_BYTES:
                        # Check early: no point downloading 500 MB of an HTML error page.
                        sniffed = self._check_head(state, head, declared_type, encoding, url)
                file.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                if total is not None and size > total:
                    self._fail(
                        state,
                        MediaContentError,
                        f"body longer than Content-Length {total}",
                        "retry",
                        url=url,
                    )
                if size > s.max_media_bytes:
                    self._fail(
                        state,
                        MediaContentError,
                        f"media body passed the limit of {s.max_media_bytes} bytes "
                        "(ARCHIVER_MAX_MEDIA_BYTES) without ending; refused",
                        "fail",
                        url=url,
                        max_bytes=s.max_media_bytes,
                    )
                self._emit("progress", state, bytes=size, delta=len(chunk), total=total)
            file.close()
            if size == 0:
                self._fail(state, MediaContentError, "empty body", "retry", url=url)
            if total is not None and size < total:
                self._fail(
                    state,
                    MediaContentError,
                    f"truncated body: {size} of {total} bytes",
                    "retry",
                    url=url,
                )
            if sniffed is None:
                sniffed = self._check_head(state, head, declared_type, encoding, url)
            mime, ext = sniffed
            result = DownloadedMedia(
                ref=state.ref,
                path=path,
                sha256=digest.hexdigest(),
                size=size,
                content_type=declared_type,
                sniffed_type=mime,
                extension=ext,
                downloaded_at=datetime.fromtimestamp(self.clock(), UTC),
                url_expires_at=state.ref.expires_at,
                source=strip_query(state.ref.url),
                attempts=state.attempts,
                refreshes=state.refreshes,
            )
            kept = True
        finally:
            if not kept:
                file.close()
                path.unlink(missing_ok=True)
        self._emit("done", state, bytes=size, total=total)
        return result

    def _check_head(
        self, state: _State, head: bytes, declared_type: str | None, encoding: str, url: str
    ) -> tuple[str, str]:
        """Refuse error pages and content that does not fit the media kind."""
        declared = declared_type or "none"
        if encoding != "identity":
            declared += f", Content-Encoding {encoding:.40} kept as sent"
        if looks_like_html(head):
            self._fail(
                state,
                MediaContentError,
                f"body is an HTML page, not media (declared {declared})",
                "retry",
                url=url,
                content_type=declared_type,
            )
        if looks_like_xml_error(head):
            self._fail(
                state,
                MediaContentError,
                f"body is an XML error document, not media (declared {declared})",
                "retry",
                url=url,
                content_type=declared_type,
                s3_code=xml_error_code(head),
            )
        found = sniff(head)
        expected = expected_for(state.ref.kind)
        if found is None or found.mime not in expected:
            sniffed = found.mime if found else "unrecognised"
            want = "audio/*" if state.ref.kind == "audio" else "application/pdf"
            self._fail(
                state,
                MediaContentError,
                f"{state.ref.kind} expected ({want}) but content is {sniffed} "
                f"(declared {declared}, sniffed {sniffed})",
                "fail",
                url=url,
                content_type=declared_type,
                sniffed_type=sniffed,
            )
        return found.mime, extension_for(found.mime) or found.ext

    # -- helpers --------------------------------------------------------------------------

    def _fail(
        self,
        state: _State,
        cls: type[MediaError],
        message: str,
        action: _Action,
        *,
        url: str | None = None,
        **context: object,
    ) -> NoReturn:
        context = {**self._context(state), **context, "url": strip_query(url or state.ref.url)}
        raise _AttemptFailed(cls(message, **context), action)

    @staticmethod
    def _context(state: _State) -> dict[str, object]:
        ref = state.ref
        return {
            "debt_id": ref.debt_id,
            "followup_id": ref.followup_id,
            "kind": ref.kind,
            "url": strip_query(ref.url),
            "attempts": state.attempts,
        }

    def _expiring(self, ref: MediaRef) -> bool:
        return expires_within(ref, self.clock(), self.settings.expiry_margin_seconds)

    def _refresh(self, state: _State, refresh: RefreshMedia, reason: str) -> None:
        old = state.ref
        new = refresh(old)
        if (new.debt_id, new.followup_id, new.kind) != (old.debt_id, old.followup_id, old.kind):
            raise MediaError(
                "refresh returned a different media reference",
                debt_id=old.debt_id,
                followup_id=old.followup_id,
                kind=old.kind,
                url=strip_query(old.url),
            )
        state.ref = new
        state.refreshes += 1
        self._emit("refreshed", state, reason=reason)

    def _backoff(self, state: _State, reason: str) -> None:
        s = self.settings
        delay = backoff_delay(
            state.failures, s.backoff_base_seconds, s.backoff_max_seconds, self.rng
        )
        self._emit("retry", state, reason=reason, delay_seconds=delay)
        self.sleep(delay)

    def _emit(self, kind: EventKind, state: _State, **fields: object) -> None:
        if self.on_event is None:
            return
        ref = state.ref
        event = DownloadEvent(
            kind=kind,
            debt_id=ref.debt_id,
            followup_id=ref.followup_id,
            media_kind=ref.kind,
            source=strip_query(ref.url),
            attempt=state.attempts,
        )
        self.on_event(replace(event, **fields))  # type: ignore[arg-type]


@dataclass
class _State:
    """Mutable bookkeeping of one ``download`` call."""

    ref: MediaRef
    attempts: int = 0  # HTTP tries made
    failures: int = 0  # tries that failed with a retryable error
    refreshes: int = 0
    refreshed_for_denial: bool = False  # the one refresh granted to a plain 403/404 is used


def blocks(pieces: Iterator[bytes], size: int) -> Iterator[memoryview]:
    """The bytes of ``pieces`` again, in blocks of exactly ``size`` (the last one shorter).

    A body arrives in network reads of up to 64 KiB; hashing, writing and reporting it a
    block at a time costs one join per block instead of a Python step per read, and the
    blocks are views of that join (httpx's own re-chunker copies every byte three times).
    Memory stays under two blocks."""
    pending: list[bytes] = []
    buffered = 0
    for piece in pieces:
        if not piece:
            continue
        pending.append(piece)
        buffered += len(piece)
        if buffered < size:
            continue
        joined = memoryview(pending[0] if len(pending) == 1 else b"".join(pending))
        whole = buffered - buffered % size
        for start in range(0, whole, size):
            yield joined[start : start + size]
        rest = joined[whole:]
        pending = [bytes(rest)] if rest else []
        buffered = len(rest)
    if buffered:
        yield memoryview(b"".join(pending))


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        return None
    return length if length >= 0 else None


def _read_limited(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of a (small, error) body as sent: never the whole of a huge
    one, never decoded (a compressed body could decode to any size)."""
    body = bytearray()
    for chunk in response.iter_raw():
        body += chunk[: limit - len(body)]
        if len(body) >= limit:
            break
    return bytes(body)
