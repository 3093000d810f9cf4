"""Checks on signed media URLs (pure): may a URL be fetched, and when does its signature end.

* :func:`check_media_url`: https only (plain http for loopback hosts only), host on the
  allowlist, a valid host name, no userinfo;
* :func:`check_addresses`: the addresses a media host resolves to are public ones (no
  loopback, private, link-local, multicast or reserved address), unless the allowlist names
  that exact loopback host (a local simulator);
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
    "check_addresses",
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


def _normal_host(host: str) -> str:
    return host.lower().strip("[]").rstrip(".")


def host_allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    """True if ``host`` matches one of the fnmatch patterns (case-insensitive; ``*`` spans dots,
    so ``*.x.com`` matches any subdomain depth, but not ``x.com`` itself)."""
    host = _normal_host(host)
    return any(fnmatch.fnmatchcase(host, _normal_host(pattern)) for pattern in allowed_hosts)


def check_media_url(url: str, settings: DownloadSettings) -> None:
    """Raise :class:`MediaHostNotAllowedError` unless ``url`` may be fetched as media.

    Allowed: ``https`` to a host matching ``settings.allowed_hosts``; plain ``http`` only when
    that host is also a loopback host (127.0.0.0/8, ::1, localhost: the local simulator). URLs
    with userinfo (``user:pass@``) are refused. The message names the host and the allowlist,
    never the query string.
    """
    allowlist = _allowlist(settings.allowed_hosts)
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
            f"media host {host!r} is not in the allowlist {allowlist}", url=source, host=host
        )
    if scheme == "https":
        return
    if scheme == "http" and _is_loopback(host):
        return
    raise MediaHostNotAllowedError(
        f"media URL scheme {scheme!r} refused for host {host!r}: https only "
        f"(http only for loopback hosts); allowlist {allowlist}",
        url=source,
        host=host,
    )


def _allowlist(allowed_hosts: tuple[str, ...]) -> str:
    """How refusals name the allowlist: the setting to change and its value."""
    return f"(ARCHIVER_MEDIA_HOSTS: {', '.join(allowed_hosts) or 'empty'})"


def _refused_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is no place to fetch media from, or None for a public address."""
    for kind, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        # Shared (100.64/10, carrier NAT) and the other special-purpose ranges.
        ("non-global", not ip.is_global),
    ):
        if flag:
            return kind
    return None


def check_addresses(host: str, addresses: list[str], allowed_hosts: tuple[str, ...]) -> None:
    """Raise :class:`MediaHostNotAllowedError` unless every address of ``host`` is public.

    A name on the allowlist may still resolve to an internal address (an S3 bucket name
    pointing at ``169.254.169.254``, ``10.x``, ``127.0.0.1``): those are refused, whatever
    else the name resolves to. The one exception is local testing: loopback addresses are
    fine for a loopback host (``localhost``, ``127.0.0.1``, ``::1``) that the allowlist names
    exactly, not through a wildcard.
    """
    name = _normal_host(host)
    exact = {_normal_host(pattern) for pattern in allowed_hosts}
    local_ok = name in exact and _is_loopback(name)
    if not addresses:
        raise MediaHostNotAllowedError(f"media host {name!r} has no address", host=name)
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            raise MediaHostNotAllowedError(
                f"media host {name!r} resolves to {address!r:.60}, not an IP address",
                host=name,
            ) from None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
        if local_ok and ip.is_loopback:
            continue
        kind = _refused_kind(ip)
        if kind is not None:
            raise MediaHostNotAllowedError(
                f"media host {name!r} resolves to {kind} address {ip}: refused (media is "
                "fetched from public addresses only; loopback only for a loopback host the "
                f"allowlist names exactly) {_allowlist(allowed_hosts)}",
                host=name,
                address=str(ip),
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
