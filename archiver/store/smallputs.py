"""Small conditional PUTs without boto3's per-call machinery: :class:`SmallPuts`.

A boto3 ``put_object`` of a few hundred bytes costs about 2.5 ms of CPU (parameter
validation, serialization, a dozen event hooks, endpoint rules, urllib3), three times what
the request itself needs. :class:`SmallPuts` sends the same request for bodies held in
memory (records, manifests, receipts, webhook deliveries, and media files up to
``StorageSettings.small_file_bytes``): the headers
:func:`~archiver.store.transfer.put_object_args` names, with ``If-None-Match: *``,
``x-amz-checksum-sha256`` and the Object Lock, signed by botocore's own SigV4 signer with the
client's credentials (the payload as boto3 signs our uploads: ``UNSIGNED-PAYLOAD``, the
signature covering the checksum S3 checks the body against), to the URL boto3 itself
resolves for the bucket, over a pool of keep-alive connections.

Only the sending is different: a refusal becomes the :class:`~botocore.exceptions.ClientError`
boto3 would have raised, and goes through the same :meth:`ObjectStore._write_failed` (a
rerun of the same bytes is fine, other bytes are an :class:`ObjectConflictError`, the rest
is translated by :mod:`.s3errors`). An answer S3 sends before it has the whole body, then
closing the connection, counts when it has arrived (else the attempt failed). Connection
failures and 5xx answers are retried as botocore's standard mode does (3 attempts); an idle
connection is reused only while nothing is waiting on it. A client this path does not cover
(a proxy, a client certificate, another signature version, no credentials) keeps boto3:
:func:`small_puts` then says None.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import queue
import random
import re
import select
import ssl
import time
import urllib.request
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, cast
from urllib.parse import SplitResult, quote, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from archiver.common.backoff import backoff_delay
from archiver.store.objects import ObjectStore
from archiver.store.transfer import put_object_args
from archiver.store.types import Lock, StoredObject

__all__ = ["PutsBytes", "SmallPuts", "small_puts"]

# What botocore's standard retry mode retries, for a PUT: transient server answers.
_RETRY_STATUS = frozenset({500, 502, 503, 504})
_RETRY_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout"})
_ATTEMPTS = 3
# The first retry comes back within a fraction of a second: the sender waits for the answer.
_BACKOFF_BASE_S = 0.2
_BACKOFF_MAX_S = 2.0
_ERROR_FIELD = re.compile(rb"<(Code|Message)>([^<]*)</\1>")
# The connection went away between two requests (a keep-alive closed by the server):
# the request never reached it, so it goes again on a new connection at once.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
_UNSIGNED_PAYLOAD = Config(s3={"payload_signing_enabled": False})


class PutsBytes(Protocol):
    """What stores one small object: :class:`ObjectStore` and :class:`SmallPuts` alike."""

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        lock: Lock,
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> StoredObject: ...


def small_puts(store: ObjectStore) -> SmallPuts | None:
    """A :class:`SmallPuts` over ``store``'s client, or None when its client is one this
    path does not cover (see the module docstring): then ``store`` puts as it does."""
    if not isinstance(getattr(store, "client", None), BaseClient):
        return None
    try:
        return SmallPuts(store)
    except _Unsupported:
        return None


class _Unsupported(Exception):
    pass


class SmallPuts:
    """Conditional, checksummed, locked PUTs of small bodies into ``store``'s bucket."""

    def __init__(self, store: ObjectStore) -> None:
        client: Any = store.client
        config = client.meta.config
        if config.signature_version not in (None, "s3v4") or config.client_cert or config.proxies:
            raise _Unsupported
        credentials = client._request_signer._credentials  # refreshed by botocore as it needs
        if credentials is None:
            raise _Unsupported
        try:
            # The URL boto3 itself would send a PUT of this bucket to (endpoint rules,
            # path addressing, FIPS or dual-stack as configured): no network, no request.
            probe = client.generate_presigned_url(
                "put_object", Params={"Bucket": store.bucket, "Key": "k"}, ExpiresIn=60
            )
        except BotoCoreError:
            raise _Unsupported from None
        base = urlsplit(probe)
        if base.scheme not in ("http", "https") or not base.path.endswith("/k"):
            raise _Unsupported
        if base.hostname is None or _proxied(base):
            raise _Unsupported
        self.store = store
        self._credentials = credentials
        self._region = client.meta.region_name or "us-east-1"
        self._base = base
        self._prefix = base.path[: -len("k")]
        self._connect_timeout = float(config.connect_timeout)
        self._read_timeout = float(config.read_timeout)
        self._context = _tls_context(client) if base.scheme == "https" else None
        self._idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue(
            maxsize=int(config.max_pool_connections)
        )
        self._rng = random.Random()
        # As many tries as the client's own retry mode makes (AWS_MAX_ATTEMPTS and the
        # config file included): standard mode's 3 when nothing is set.
        retries = dict(config.retries or {})
        total = retries.get("total_max_attempts")
        if total is None and retries.get("max_attempts") is not None:
            total = int(retries["max_attempts"]) + 1
        self._attempts = max(1, int(total)) if total is not None else _ATTEMPTS

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        lock: Lock,
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> StoredObject:
        """Store small ``data`` at ``key`` once, locked; a rerun with the same bytes is a
        no-op (the contract of :meth:`ObjectStore.put_bytes`)."""
        sha256 = hashlib.sha256(data).hexdigest()
        return self.put_measured(
            key, data, sha256=sha256, lock=lock, content_type=content_type, metadata=metadata
        )

    def put_measured(
        self,
        key: str,
        data: bytes,
        *,
        sha256: str,
        lock: Lock,
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> StoredObject:
        """:meth:`put_bytes` for bytes whose SHA-256 the caller measured (a downloaded file's,
        hashed as it streamed in): not hashed again here. S3 checks the body against it and
        refuses bytes that do not match (:class:`~archiver.errors.StorageError`)."""
        return self._put_once(key, data, sha256, lock, content_type, metadata)

    def _put_once(
        self,
        key: str,
        data: bytes,
        sha256: str,
        lock: Lock,
        content_type: str,
        metadata: dict[str, str] | None,
    ) -> StoredObject:
        args = put_object_args(self.store.bucket, key, sha256, lock, content_type, metadata)
        headers = _headers(args)
        if any(not value.isascii() for value in headers.values()):
            # Non-ASCII metadata: boto3 knows how S3 wants it sent.
            return self.store._put_once(key, data, sha256, len(data), lock, content_type, metadata)
        headers["If-None-Match"] = "*"
        # S3 checks the body against this SHA-256, and the signature covers it (see
        # _send_once): the bytes sent are pinned without the signer hashing them again.
        headers["x-amz-checksum-sha256"] = base64.b64encode(bytes.fromhex(sha256)).decode()
        path = self._prefix + quote(key, safe="/~")
        try:
            status, answer, body = self._send(path, data, headers)
        except (OSError, http.client.HTTPException) as exc:
            failed = EndpointConnectionError(endpoint_url=self._url(path), error=exc)
            return self.store._write_failed(failed, key, sha256, len(data), lock)
        if 200 <= status < 300:
            return StoredObject(key, answer.get("x-amz-version-id"), sha256, len(data), True)
        refused = ClientError(cast(Any, _error_response(status, answer, body)), "PutObject")
        return self.store._write_failed(refused, key, sha256, len(data), lock)

    def _send(
        self, path: str, data: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """PUT with retries: ``(status, lower-cased headers, body)`` of the last answer."""
        attempt = 1
        while True:
            try:
                status, answer, body = self._send_once(path, data, headers)
            except (OSError, http.client.HTTPException):
                if attempt >= self._attempts:
                    raise
            else:
                code = _error_code(body) if status >= 300 else ""
                if attempt >= self._attempts or (
                    status not in _RETRY_STATUS and code not in _RETRY_CODES
                ):
                    return status, answer, body
            time.sleep(backoff_delay(attempt, _BACKOFF_BASE_S, _BACKOFF_MAX_S, self._rng))
            attempt += 1

    def _send_once(
        self, path: str, data: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        request = AWSRequest("PUT", self._url(path), data=data, headers=headers)
        # Signed as boto3 signs our checksummed uploads (store.settings.make_s3_client):
        # X-Amz-Content-SHA256: UNSIGNED-PAYLOAD, the signature covering the checksum header.
        # Left to itself the signer would hash the body once more (this bare request carries
        # no checksum context, so it would over https too).
        request.context["client_config"] = _UNSIGNED_PAYLOAD
        # Signed per attempt: X-Amz-Date is part of the signature.
        S3SigV4Auth(self._credentials.get_frozen_credentials(), "s3", self._region).add_auth(
            request
        )
        signed = dict(request.headers.items())
        while True:
            conn, reused = self._connection()
            sent = False
            try:
                try:
                    conn.request("PUT", path, body=data, headers=signed)
                    sent = True
                except (BrokenPipeError, ConnectionResetError):
                    # S3 may answer before it has the whole body (a taken key, a refused
                    # signature) and close: that answer counts, and getresponse reads it if
                    # it arrived. With none, it raises as a connection that went away.
                    pass
                response = conn.getresponse()
                body = response.read()
            except _STALE:
                conn.close()
                if reused:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            answer = {name.lower(): value for name, value in response.getheaders()}
            if response.will_close or not sent:
                conn.close()
            else:
                self._release(conn)
            return response.status, answer, body

    def _url(self, path: str) -> str:
        return f"{self._base.scheme}://{self._base.netloc}{path}"

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        while True:
            try:
                idle = self._idle.get_nowait()
            except queue.Empty:
                break
            if _reusable(idle):
                return idle, True
            idle.close()
        host, port = self._base.hostname or "", self._base.port
        conn: http.client.HTTPConnection
        if self._context is not None:
            conn = http.client.HTTPSConnection(
                host, port, timeout=self._connect_timeout, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(self._read_timeout)
        return conn, False

    def _release(self, conn: http.client.HTTPConnection) -> None:
        try:
            self._idle.put_nowait(conn)
        except queue.Full:
            conn.close()

    def close(self) -> None:
        """Close the idle connections."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _reusable(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle keep-alive connection can carry the next request: open, with nothing
    to read. One the server closed while idle reads as the end of the stream; one it wrote to
    unasked (a 408 before closing) holds an answer to no request of ours. urllib3 checks the
    same before it reuses a connection."""
    sock = conn.sock
    if sock is None:
        return False
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _headers(args: Mapping[str, Any]) -> dict[str, str]:
    """The HTTP headers of :func:`put_object_args`' arguments, as botocore sends them."""
    headers: dict[str, str] = {}
    for name, value in args.items():
        if name in ("Bucket", "Key"):
            continue
        if name == "ContentType":
            headers["Content-Type"] = value
        elif name == "ObjectLockMode":
            headers["x-amz-object-lock-mode"] = value
        elif name == "ObjectLockRetainUntilDate":
            headers["x-amz-object-lock-retain-until-date"] = _iso8601(value)
        elif name == "ObjectLockLegalHoldStatus":
            headers["x-amz-object-lock-legal-hold"] = value
        elif name == "Metadata":
            headers.update({f"x-amz-meta-{k}": v for k, v in value.items()})
        else:  # a new argument of every write must be sent here too
            raise ValueError(f"SmallPuts does not know how to send {name}")
    return headers


def _iso8601(value: datetime) -> str:
    # Lock dates are whole seconds in UTC (Lock normalises them): botocore's header format.
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_code(body: bytes) -> str:
    fields = dict(_ERROR_FIELD.findall(body[:4096]))
    return fields.get(b"Code", b"").decode("utf-8", "replace")


def _error_response(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The parsed error boto3 would put in its :class:`ClientError` (code, message, status)."""
    fields = dict(_ERROR_FIELD.findall(body[:4096]))
    code = fields.get(b"Code", b"").decode("utf-8", "replace") or str(status)
    message = fields.get(b"Message", b"").decode("utf-8", "replace")
    return {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers},
    }


def _proxied(url: SplitResult) -> bool:
    """Whether the environment sends requests to this URL through a proxy."""
    proxies = urllib.request.getproxies()
    return url.scheme in proxies and not urllib.request.proxy_bypass(url.hostname or "")


def _tls_context(client: Any) -> ssl.SSLContext:
    """TLS as the client verifies it: its CA bundle, or none when verification is off."""
    verify = client._endpoint.http_session._verify
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
