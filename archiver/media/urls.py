"""Checks on signed media URLs (pure): may a URL be fetched, and when does its signature end.

* :func:`check_media_url`: https only (plain http for loopback hosts only), host on the
  allowlist, a valid host name, no userinfo;
* :func:`url_deadline` / :func:`expires_within`: when a presigned URL stops working, from the
  ``expires_at`` the API gave or from the URL's own signature parameters;
* :func:`s3_says_expired`: whether an S3 ``AccessDenied`` body means "expired".

Messages never carry a signed query string: URLs go through ``strip_query``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import ipaddress
import re
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

from archiver.common.redact import strip_query
from archiver.errors import MediaHostNotAllowedError
from archiver.getbill.records import MediaRef
from archiver.media.types import DownloadSettings

__all__ = [
    "check_media_url",
    "expires_within",
    "host_allowed",
    "s3_says_expired",
    "url_deadline",
    "url_query",
]


_HOST_LABELS = re.compile(
    r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$"
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    """True if ``host`` matches one of the fnmatch patterns (case-insensitive; ``*`` spans dots,
    so ``*.x.com`` matches any subdomain depth, but not ``x.com`` itself)."""
    host = host.lower().rstrip(".")
    return any(fnmatch.fnmatchcase(host, pattern.lower().rstrip(".")) for pattern in allowed_hosts)


def check_media_url(url: str, settings: DownloadSettings) -> None:
    """Raise :class:`MediaHostNotAllowedError` unless ``url`` may be fetched as media.

    Allowed: ``https`` to a host matching ``settings.allowed_hosts``; plain ``http`` only when
    that host is also a loopback host (127.0.0.0/8, ::1, localhost: the local simulator). URLs
    with userinfo (``user:pass@``) are refused. The message names the host and the allowlist,
    never the query string.
    """
    allowlist = ", ".join(settings.allowed_hosts) or "(empty)"
    source = strip_query(url)
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        raise MediaHostNotAllowedError("media URL cannot be parsed", url=source) from None
    scheme = parts.scheme.lower()
    if "@" in parts.netloc:
        raise MediaHostNotAllowedError(
            f"media URL for host {host!r} carries userinfo (user:password@); refused",
            url=source,
            host=host,
        )
    is_ip = False
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        is_ip = True
    if not host or not (is_ip or _HOST_LABELS.match(host)):
        raise MediaHostNotAllowedError(
            f"media URL host {host!r} is not a valid host name", url=source, host=host
        )
    if not host_allowed(host, settings.allowed_hosts):
        raise MediaHostNotAllowedError(
            f"media host {host!r} is not in the allowlist ({allowlist})", url=source, host=host
        )
    if scheme == "https":
        return
    if scheme == "http" and _is_loopback(host):
        return
    raise MediaHostNotAllowedError(
        f"media URL scheme {scheme!r} refused for host {host!r}: https only "
        f"(http only for loopback hosts); allowlist ({allowlist})",
        url=source,
        host=host,
    )


def url_query(url: str) -> str:
    """The query string of ``url`` (the signature of a presigned URL), or "" if unparsable."""
    try:
        return urlsplit(url).query
    except ValueError:
        return ""


# -- signature deadline


def url_deadline(url: str) -> float | None:
    """The unix time a presigned URL stops working, from its own query: SigV4 ``X-Amz-Date`` +
    ``X-Amz-Expires``, or SigV2 ``Expires``. None if the URL does not say."""
    try:
        query = dict(parse_qsl(urlsplit(url).query))
    except ValueError:
        return None
    with contextlib.suppress(KeyError, ValueError):
        signed = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return signed.timestamp() + int(query["X-Amz-Expires"])
    with contextlib.suppress(KeyError, ValueError):
        return float(int(query["Expires"]))
    return None


def expires_within(ref: MediaRef, now: float, margin: float) -> bool:
    """True if ``ref`` expires within ``margin`` seconds: by ``expires_at``, or when the API
    did not say, by the URL's own signature parameters."""
    deadline = ref.expires_at.timestamp() if ref.expires_at is not None else url_deadline(ref.url)
    return _past_deadline(deadline, now, margin)


def _past_deadline(deadline: float | None, now: float, margin: float) -> bool:
    return deadline is not None and deadline - margin <= now


_XML_TIME = {
    name: re.compile(rb"<" + name.encode() + rb">\s*([0-9TZ:.+-]{10,40})\s*</")
    for name in ("Expires", "ServerTime")
}


def s3_says_expired(body: bytes, url: str, now: float) -> bool:
    """An S3 ``AccessDenied`` is an expiry when its body shows ``<Expires>`` at or before
    ``<ServerTime>`` (the server's own clock), or the URL's signature has lapsed by ours."""
    times: dict[str, float] = {}
    for name, pattern in _XML_TIME.items():
        match = pattern.search(body)
        if match:
            with contextlib.suppress(ValueError):
                value = match.group(1).decode("ascii").replace("Z", "+00:00")
                times[name] = datetime.fromisoformat(value).timestamp()
    if len(times) == 2 and times["Expires"] <= times["ServerTime"]:
        return True
    return _past_deadline(url_deadline(url), now, 0)
