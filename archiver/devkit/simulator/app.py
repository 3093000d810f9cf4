"""The simulator itself: state (tokens, rate windows, faults) and the WSGI application.

Choices where getbill's public API docs say nothing:

* ``limit`` above 100 is clamped to 100 (``pagination.limit`` says so); ``page``/``limit`` that
  are not positive integers answer 400 with ``details: {"page": [...]}``.
* ``pagination.pages`` is ``ceil(total / limit)`` (0 for an empty list); a page past the end
  answers 200 with ``data: []``.
* Lists are in creation order (oldest first); added followups go to the end. Followups the
  ``insert_during_listing`` knob inserts are backdated and go to the top. ``GET /followups``
  lists debt by debt, or by date with ``followups_order="date"``.
* ``GET /followups`` also takes ``debt_id`` and ``from``/``to`` (YYYY-MM-DD, inclusive, on the
  UTC day of ``call_date`` or else ``scheduled_at``: see :mod:`.routes`, the real API does not
  say); unknown ``status``/``type`` values answer 400.
* ``POST /token`` errors use the documented error shape (400 bad grant or scope, 401 bad
  client); credentials may also come as HTTP Basic auth. Omitted ``scope`` grants every scope of
  the client.
* Scope is checked before existence: 403 scope, then 404, then 403 "Access denied to this debt".
* Rate-limit headers are on every API and token response (not on media, which is "S3"); only
  authenticated API requests count, per client id, the forced 429s excepted.
* ``media_urls_expire_at`` is present only on followups that carry a media URL.
* Signed URLs: signature = HMAC-SHA256(secret, "{path}\\n{X-Amz-Date}\\n{X-Amz-Expires}"). The
  signature is checked before the expiry (a tampered expired URL is SignatureDoesNotMatch).
  Media support ``Range: bytes=a-b`` (206) and HEAD, as S3 does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from archiver.devkit.simulator.routes import dispatch
from archiver.devkit.simulator.state import RequestRecord, SimulatorState

__all__ = ["Simulator"]


class Simulator(SimulatorState):
    """An in-memory getbill external API. Thread-safe; see the module docstring for choices.

    ``base_url`` prefixes the signed media URLs; when None it is taken from each request's Host
    header (``SimulatorServer`` sets it once the socket is bound). ``clock`` returns unix seconds.
    """

    @property
    def wsgi_app(self) -> Callable[..., Iterable[bytes]]:
        """The WSGI application (``wsgi_app(environ, start_response)``)."""
        return self._wsgi

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        response = dispatch(self, environ, method, path)
        with self._lock:
            self.request_log.append(RequestRecord(method, path, response.status))
        phrase = HTTPStatus(response.status).phrase
        start_response(f"{response.status} {phrase}", response.headers)
        return response.body
