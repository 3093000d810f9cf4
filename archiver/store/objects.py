"""The WORM object store: the only module that talks to S3.

Every write is conditional (``If-None-Match: *``) and carries a SHA-256 checksum the server
verifies, an Object Lock retention and the full-object SHA-256 as metadata. A key that already
holds the same bytes is a rerun, not an error; a key holding other bytes is a loud
:class:`ObjectConflictError`. Nothing is ever overwritten.

botocore exceptions are translated here, and only here, into the error tree of
:mod:`archiver.errors`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, NoReturn, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from archiver.common.time import iso
from archiver.errors import (
    BucketNotLockedError,
    ConfigError,
    ObjectConflictError,
    RetentionError,
    StorageError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "MODES",
    "Lock",
    "Mode",
    "ObjectInfo",
    "ObjectStore",
    "StorageSettings",
    "StoredObject",
    "VersionInfo",
    "make_s3_client",
]

Mode = Literal["GOVERNANCE", "COMPLIANCE"]
MODES: tuple[Mode, ...] = ("GOVERNANCE", "COMPLIANCE")
MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last

# Error codes meaning "the bytes that arrived are not the bytes that were sent".
_DIGEST_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
_CONDITIONAL_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}
_NOT_FOUND_CODES = {"404", "NoSuchKey", "NoSuchVersion", "NotFound"}
_REFUSED_CODES = {"AccessDenied", "InvalidRequest", "InvalidArgument", "MethodNotAllowed"}


class _LargeBlocks(io.RawIOBase):
    """A file read in large blocks: http.client sends a file body ``blocksize`` (8 KiB) at a
    time, a Python loop of a thousand iterations per 8 MB; returning up to ``block`` bytes per
    read cuts that to a handful while memory stays at one block."""

    def __init__(self, raw: BinaryIO, block: int) -> None:
        self._raw = raw
        self._block = block

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self._raw.read()
        return self._raw.read(max(size, self._block))

    def close(self) -> None:
        self._raw.close()
        super().close()


def _payload_sha256_from_checksum(request: Any, **_: Any) -> None:
    """Before SigV4 signs a PUT: the body's SHA-256 is already known (we send it as
    ``x-amz-checksum-sha256``), so give it to the signer as ``X-Amz-Content-SHA256``.

    Over plain http botocore would otherwise read and hash the whole body once more just to
    sign it; with the header the signature covers the same hash and S3 checks both."""
    checksum = request.headers.get("x-amz-checksum-sha256")
    if checksum and "X-Amz-Content-SHA256" not in request.headers:
        request.headers["X-Amz-Content-SHA256"] = base64.b64decode(checksum).hex()


def _sign_with_known_sha256(client: Any) -> None:
    events = client.meta.events
    for operation in ("PutObject", "UploadPart"):
        # unique_id: registering twice (several stores on one client) keeps one handler.
        events.register(
            f"before-sign.s3.{operation}",
            _payload_sha256_from_checksum,
            unique_id=f"archiver-known-sha256-{operation}",
        )


def _utc(value: datetime) -> datetime:
    """``value`` in UTC, rounded up to a whole second.

    S3 keeps retain-until dates to the second; rounding up (never down, which would shorten
    the lock) makes a date read back equal the date written, so reruns see nothing to extend.
    """
    if value.tzinfo is None:
        raise ValueError(f"retain_until must be timezone-aware (UTC), got naive {value!r}")
    value = value.astimezone(UTC)
    if value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value


@dataclass(frozen=True)
class Lock:
    """An Object Lock: mode, retain-until date (aware, normalised to UTC) and legal hold."""

    mode: Mode
    retain_until: datetime
    legal_hold: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Object Lock mode must be one of {MODES}, got {self.mode!r}")
        object.__setattr__(self, "retain_until", _utc(self.retain_until))


@dataclass(frozen=True)
class StoredObject:
    """The result of a put. ``created`` is False when the key already held the same SHA-256."""

    key: str
    version_id: str | None
    sha256: str
    size: int
    created: bool


@dataclass(frozen=True)
class ObjectInfo:
    """What HEAD says about one object version. ``sha256`` is the full-object hex digest."""

    key: str
    version_id: str | None
    size: int
    sha256: str | None
    content_type: str | None
    lock_mode: Mode | None
    retain_until: datetime | None
    legal_hold: bool
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionInfo:
    """One entry of ListObjectVersions (an object version or a delete marker)."""

    key: str
    version_id: str | None
    size: int
    is_latest: bool
    last_modified: datetime | None
    is_delete_marker: bool


@dataclass(frozen=True)
class StorageSettings:
    """Transfer tuning.

    multipart_threshold: files larger than this are uploaded in parts (default 16 MiB).
    part_size: bytes per part, at least 5 MiB (S3's minimum); also the most memory one upload
        holds at a time (default 16 MiB).
    read_chunk: bytes per read from disk or from a GET stream (default 1 MiB).
    """

    multipart_threshold: int = 16 * MiB
    part_size: int = 16 * MiB
    read_chunk: int = 1 * MiB

    def __post_init__(self) -> None:
        if self.part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least 5 MiB, got {self.part_size}")
        if self.read_chunk <= 0 or self.multipart_threshold <= 0:
            raise ValueError("read_chunk and multipart_threshold must be positive")


def make_s3_client(
    endpoint_url: str | None = None, *, checksum_when_required: bool = True, **kw: Any
) -> S3Client:
    """A boto3 S3 client with path addressing and standard retries.

    Endpoint, credentials, profile and region come from boto3's own environment
    (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_REGION...)
    unless ``endpoint_url`` is given. With ``checksum_when_required`` (the default) botocore
    adds no checksum of its own: we send an explicit ``ChecksumSHA256`` on every upload.
    Extra keyword arguments go to ``Session.client`` (e.g. ``region_name``).
    """
    mode: Literal["when_supported", "when_required"] = (
        "when_required" if checksum_when_required else "when_supported"
    )
    config = Config(
        s3={"addressing_style": "path"},
        retries={"mode": "standard"},
        request_checksum_calculation=mode,
        response_checksum_validation=mode,
    )
    session = boto3.session.Session()
    if session.region_name is None and "region_name" not in kw:
        kw["region_name"] = "us-east-1"
    if endpoint_url is not None:
        kw["endpoint_url"] = endpoint_url
    return session.client("s3", config=config, **kw)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


class ObjectStore:
    """One Object-Lock bucket, seen through a boto3 S3 client."""

    def __init__(
        self, client: S3Client, bucket: str, settings: StorageSettings | None = None
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.settings = settings or StorageSettings()
        _sign_with_known_sha256(client)

    # -- error translation ------------------------------------------------------------------

    def _fail(self, exc: Exception, action: str, **context: Any) -> NoReturn:
        """Translate a botocore exception into our error tree (never returns)."""
        context = {"bucket": self.bucket, **context}
        if isinstance(exc, NoCredentialsError):
            raise ConfigError(
                "no S3 credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY",
                **context,
            ) from exc
        if isinstance(exc, BotoCoreError):
            raise StorageError(f"{action} failed: {exc}", **context) from exc
        assert isinstance(exc, ClientError)
        code, status = _code(exc), _status(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        context.update(code=code or None, status=status)
        if code in _DIGEST_CODES:
            raise StorageError(
                f"{action}: the server refused the upload because the bytes it received do not "
                "match their SHA-256 checksum (corrupted in transit, or the local file changed)",
                **context,
            ) from exc
        if code == "NoSuchBucket":
            raise BucketNotLockedError(
                f"bucket {self.bucket!r} does not exist; create it with "
                f"`archiver init-bucket {self.bucket}`",
                **context,
            ) from exc
        raise StorageError(
            f"{action} failed: {code or status} {message}".strip(), **context
        ) from exc

    def _call(self, action: str, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, action, key=kwargs.get("Key"), version_id=kwargs.get("VersionId"))

    # -- bucket -----------------------------------------------------------------------------

    def create_bucket(self, *, mode: Mode | None = None, days: int | None = None) -> None:
        """Create the bucket with Object Lock (hence versioning), optionally a default retention.

        Idempotent on a bucket that already has Object Lock (its default retention is only
        changed when ``mode`` and ``days`` are given). A bucket that exists without Object Lock
        raises :class:`BucketNotLockedError`: it cannot hold evidence.
        """
        if (mode is None) != (days is None):
            raise ConfigError("default retention needs both a mode and a number of days")
        if mode is not None and mode not in MODES:
            raise ConfigError(f"retention mode must be one of {', '.join(MODES)}, got {mode!r}")
        if days is not None and days < 1:
            raise ConfigError(f"default retention days must be at least 1, got {days}")
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "ObjectLockEnabledForBucket": True}
        region = self.client.meta.region_name
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as exc:
            code = _code(exc)
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                self._fail(exc, f"create bucket {self.bucket}")
            # SeaweedFS answers BucketAlreadyExists even for our own bucket: look before judging.
            try:
                self.check_bucket()
            except BucketNotLockedError:
                raise
            except StorageError as inner:
                if code == "BucketAlreadyExists":
                    raise StorageError(
                        f"bucket name {self.bucket!r} is taken by another account; "
                        "choose another name",
                        bucket=self.bucket,
                    ) from inner
                raise
        except BotoCoreError as exc:
            self._fail(exc, f"create bucket {self.bucket}")
        if mode is not None and days is not None:
            self._call(
                "set default retention",
                self.client.put_object_lock_configuration,
                Bucket=self.bucket,
                ObjectLockConfiguration={
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}},
                },
            )

    def check_bucket(self) -> None:
        """Raise :class:`BucketNotLockedError` unless the bucket exists with Object Lock on."""
        try:
            conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) == "ObjectLockConfigurationNotFoundError":
                raise BucketNotLockedError(
                    f"bucket {self.bucket!r} exists but has no Object Lock, so it cannot hold "
                    "WORM evidence; create a new bucket with `archiver init-bucket NAME`",
                    bucket=self.bucket,
                ) from exc
            self._fail(exc, f"check bucket {self.bucket}")
        except BotoCoreError as exc:
            self._fail(exc, f"check bucket {self.bucket}")
        if conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise BucketNotLockedError(
                f"bucket {self.bucket!r} has Object Lock disabled; create a new bucket with "
                "`archiver init-bucket NAME`",
                bucket=self.bucket,
            )

    def default_retention(self) -> tuple[Mode, int] | None:
        """The bucket's default retention as ``(mode, days)`` (years converted), or None."""
        conf = self._call(
            "read Object Lock configuration",
            self.client.get_object_lock_configuration,
            Bucket=self.bucket,
        )
        rule = conf.get("ObjectLockConfiguration", {}).get("Rule", {}).get("DefaultRetention")
        if not rule:
            return None
        days = rule.get("Days") or 365 * int(rule.get("Years", 0))
        return cast(Mode, rule["Mode"]), int(days)

    # -- writes -----------------------------------------------------------------------------

    def _put_args(
        self,
        key: str,
        sha256: str,
        lock: Lock,
        content_type: str,
        metadata: dict[str, str] | None,
    ) -> dict[str, Any]:
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "ContentType": content_type,
            "ObjectLockMode": lock.mode,
            "ObjectLockRetainUntilDate": lock.retain_until,
            "Metadata": {**(metadata or {}), "sha256": sha256},
        }
        if lock.legal_hold:
            args["ObjectLockLegalHoldStatus"] = "ON"
        return args

    def _write_failed(
        self, exc: Exception, key: str, sha256: str, size: int, lock: Lock
    ) -> StoredObject:
        """Handle a refused write: a rerun (same bytes) is fine, anything else raises."""
        if isinstance(exc, ClientError) and (
            _code(exc) in _CONDITIONAL_CODES or _status(exc) in (409, 412)
        ):
            return self._existing(key, sha256, size)
        if (
            isinstance(exc, ClientError)
            and _status(exc) == 400
            and lock.retain_until <= datetime.now(UTC)
        ):
            raise RetentionError(
                f"the server refused retain-until {iso(lock.retain_until)}: it must be in the "
                "future",
                bucket=self.bucket,
                key=key,
                retain_until=iso(lock.retain_until),
                code=_code(exc),
            ) from exc
        self._fail(exc, f"store {key}", key=key)

    def _existing(self, key: str, sha256: str, size: int) -> StoredObject:
        info = self.head(key)
        if info is None:
            raise StorageError(
                "the server refused a conditional write but the key is not readable "
                "(concurrent writer?)",
                bucket=self.bucket,
                key=key,
            )
        found = info.sha256
        if found is None:  # written by something else: hash the bytes themselves
            found, _ = self.sha256_of(key, info.version_id)
        if found != sha256:
            raise ObjectConflictError(
                "the key already holds different bytes; refusing to overwrite evidence",
                bucket=self.bucket,
                key=key,
                existing_sha256=found,
                new_sha256=sha256,
                existing_version_id=info.version_id,
            )
        return StoredObject(key, info.version_id, sha256, info.size, created=False)

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        lock: Lock,
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> StoredObject:
        """Store small ``data`` at ``key`` once, locked; a rerun with the same bytes is a no-op."""
        sha256 = hashlib.sha256(data).hexdigest()
        return self._put_once(key, data, sha256, len(data), lock, content_type, metadata)

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        sha256: str,
        size: int,
        lock: Lock,
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> StoredObject:
        """Store the file at ``path`` (whose SHA-256 and size the caller measured) once, locked.

        Files up to ``multipart_threshold`` go in one streamed PUT; larger ones in parts of
        ``part_size`` bytes, each with its own SHA-256, completed conditionally. The server
        verifies every checksum; memory use stays at one part at most.
        """
        path = Path(path)
        actual = path.stat().st_size
        if actual != size:
            raise StorageError(
                f"{path} is {actual} bytes, expected {size}", bucket=self.bucket, key=key
            )
        if size <= self.settings.multipart_threshold:
            with _LargeBlocks(path.open("rb"), self.settings.read_chunk) as body:
                return self._put_once(
                    key, cast(BinaryIO, body), sha256, size, lock, content_type, metadata
                )
        return self._put_multipart(key, path, sha256, size, lock, content_type, metadata)

    def _put_once(
        self,
        key: str,
        body: bytes | BinaryIO,
        sha256: str,
        size: int,
        lock: Lock,
        content_type: str,
        metadata: dict[str, str] | None,
    ) -> StoredObject:
        """One conditional, checksummed, locked PUT (``If-None-Match: *``)."""
        args = self._put_args(key, sha256, lock, content_type, metadata)
        try:
            resp = self.client.put_object(
                **args,
                Body=body,
                ContentLength=size,
                IfNoneMatch="*",
                ChecksumSHA256=_b64(sha256),
            )
        except (ClientError, BotoCoreError) as exc:
            return self._write_failed(exc, key, sha256, size, lock)
        return StoredObject(key, resp.get("VersionId"), sha256, size, created=True)

    def _put_multipart(
        self,
        key: str,
        path: Path,
        sha256: str,
        size: int,
        lock: Lock,
        content_type: str,
        metadata: dict[str, str] | None,
    ) -> StoredObject:
        args = self._put_args(key, sha256, lock, content_type, metadata)
        # Cheap check first: a rerun should not upload hundreds of megabytes to learn that.
        existing = self.head(key)
        if existing is not None:
            return self._existing(key, sha256, size)
        try:
            upload = self.client.create_multipart_upload(**args, ChecksumAlgorithm="SHA256")
        except (ClientError, BotoCoreError) as exc:
            return self._write_failed(exc, key, sha256, size, lock)
        upload_id = upload["UploadId"]
        completed = False
        try:
            parts = self._upload_parts(key, path, upload_id, sha256)
            try:
                resp = self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": cast(Any, parts)},
                    IfNoneMatch="*",
                )
            except (ClientError, BotoCoreError) as exc:
                return self._write_failed(exc, key, sha256, size, lock)
            completed = True
            return StoredObject(key, resp.get("VersionId"), sha256, size, created=True)
        finally:
            # Registered the moment the upload exists: no orphaned parts on any failure.
            if not completed:
                # The original error matters more than a failed abort.
                with contextlib.suppress(ClientError, BotoCoreError):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload_id
                    )

    def _upload_parts(
        self, key: str, path: Path, upload_id: str, sha256: str
    ) -> list[dict[str, Any]]:
        whole = hashlib.sha256()
        parts: list[dict[str, Any]] = []
        chunk = self.settings.read_chunk
        size = self.settings.part_size
        with path.open("rb") as fh:
            for number in range(1, 10_001):  # S3 allows at most 10,000 parts
                # One part in memory at a time, filled chunk by chunk.
                buf = bytearray()
                while len(buf) < size and (piece := fh.read(min(chunk, size - len(buf)))):
                    buf += piece
                if not buf:
                    break
                whole.update(buf)
                digest = base64.b64encode(hashlib.sha256(buf).digest()).decode("ascii")
                try:
                    resp = self.client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        # bytearray is accepted by botocore (no copy of the part).
                        Body=cast(bytes, buf),
                        ChecksumSHA256=digest,
                        ChecksumAlgorithm="SHA256",
                    )
                except (ClientError, BotoCoreError) as exc:
                    self._fail(exc, f"upload part {number} of {key}", key=key)
                parts.append({"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": digest})
                if len(buf) < size:
                    break
            else:
                raise StorageError(
                    f"{path} needs more than 10,000 parts; raise part_size",
                    bucket=self.bucket,
                    key=key,
                )
        if whole.hexdigest() != sha256:
            raise StorageError(
                f"{path} changed while uploading: its SHA-256 is now {whole.hexdigest()}, "
                f"expected {sha256}; upload aborted",
                bucket=self.bucket,
                key=key,
            )
        return parts

    # -- reads ------------------------------------------------------------------------------

    def head(self, key: str, version_id: str | None = None) -> ObjectInfo | None:
        """HEAD one object (latest or a given version); None if it does not exist."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            resp = self.client.head_object(**kwargs)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND_CODES or _status(exc) == 404:
                return None
            self._fail(exc, f"head {key}", key=key, version_id=version_id)
        except BotoCoreError as exc:
            self._fail(exc, f"head {key}", key=key, version_id=version_id)
        meta = dict(resp.get("Metadata") or {})
        until = resp.get("ObjectLockRetainUntilDate")
        return ObjectInfo(
            key=key,
            version_id=resp.get("VersionId"),
            size=int(resp.get("ContentLength", 0)),
            sha256=meta.get("sha256"),
            content_type=resp.get("ContentType"),
            lock_mode=cast("Mode | None", resp.get("ObjectLockMode")),
            retain_until=until.astimezone(UTC) if until else None,
            legal_hold=resp.get("ObjectLockLegalHoldStatus") == "ON",
            metadata=meta,
        )

    def iter_chunks(self, key: str, version_id: str | None = None) -> Iterator[bytes]:
        """Stream one object in ``read_chunk`` pieces."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        resp = self._call(f"get {key}", self.client.get_object, **kwargs)
        body = resp["Body"]
        try:
            yield from body.iter_chunks(self.settings.read_chunk)
        except BotoCoreError as exc:
            self._fail(exc, f"read {key}", key=key, version_id=version_id)
        finally:
            body.close()

    def read_bytes(self, key: str, version_id: str | None = None) -> bytes:
        """The whole object in memory: small objects (records, manifests) only."""
        return b"".join(self.iter_chunks(key, version_id))

    def sha256_of(self, key: str, version_id: str | None = None) -> tuple[str, int]:
        """Re-hash the stored bytes by streaming them: ``(sha256 hex, size)``."""
        digest = hashlib.sha256()
        size = 0
        for chunk in self.iter_chunks(key, version_id):
            digest.update(chunk)
            size += len(chunk)
        return digest.hexdigest(), size

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every current key under ``prefix``, in key order."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, f"list {prefix}", prefix=prefix)

    def list_versions(self, prefix: str) -> Iterator[VersionInfo]:
        """Every version and delete marker under ``prefix``."""
        paginator = self.client.get_paginator("list_object_versions")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Versions", []):
                    yield VersionInfo(
                        key=item["Key"],
                        version_id=item.get("VersionId"),
                        size=int(item.get("Size", 0)),
                        is_latest=bool(item.get("IsLatest")),
                        last_modified=item.get("LastModified"),
                        is_delete_marker=False,
                    )
                for marker in page.get("DeleteMarkers", []):
                    yield VersionInfo(
                        key=marker["Key"],
                        version_id=marker.get("VersionId"),
                        size=0,
                        is_latest=bool(marker.get("IsLatest")),
                        last_modified=marker.get("LastModified"),
                        is_delete_marker=True,
                    )
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, f"list versions of {prefix}", prefix=prefix)

    # -- retention and legal hold -----------------------------------------------------------

    def get_lock(self, key: str, version_id: str | None = None) -> Lock | None:
        """The version's retention and legal hold, or None when it has neither."""
        info = self.head(key, version_id)
        if info is None:
            raise StorageError("no such object", bucket=self.bucket, key=key, version_id=version_id)
        if info.lock_mode is None or info.retain_until is None:
            if info.legal_hold:
                # A hold without retention: report it with a retain-until of "now".
                return Lock("GOVERNANCE", datetime.now(UTC), legal_hold=True)
            return None
        return Lock(info.lock_mode, info.retain_until, legal_hold=info.legal_hold)

    def _refused(
        self, exc: Exception, action: str, key: str, version_id: str | None, **context: Any
    ) -> NoReturn:
        """Retention / hold / delete refusals become RetentionError; the rest goes to _fail."""
        if isinstance(exc, ClientError) and (
            _code(exc) in _REFUSED_CODES or _status(exc) in (400, 403)
        ):
            raise RetentionError(
                f"the server refused to {action}",
                bucket=self.bucket,
                key=key,
                version_id=version_id,
                code=_code(exc),
                **context,
            ) from exc
        self._fail(exc, action, key=key, version_id=version_id)

    def set_retention(
        self,
        key: str,
        version_id: str | None,
        *,
        mode: Mode,
        retain_until: datetime,
        bypass_governance: bool = False,
    ) -> None:
        """Set the retention as asked (the server decides); refusal raises RetentionError."""
        until = _utc(retain_until)
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Retention": {"Mode": mode, "RetainUntilDate": until},
        }
        if version_id:
            kwargs["VersionId"] = version_id
        if bypass_governance:
            kwargs["BypassGovernanceRetention"] = True
        try:
            self.client.put_object_retention(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            current = self.head(key, version_id)
            self._refused(
                exc,
                f"set retention {mode} until {iso(until)}",
                key,
                version_id,
                current_mode=current.lock_mode if current else None,
                current_retain_until=iso(current.retain_until) if current else None,
            )

    def extend_retention(
        self, key: str, version_id: str | None, *, mode: Mode, retain_until: datetime
    ) -> bool:
        """Extend the retention to ``retain_until``; never shortens, never weakens.

        Returns False (and changes nothing) when the current date is already as late. A
        COMPLIANCE lock stays COMPLIANCE even if ``mode`` says GOVERNANCE.
        """
        until = _utc(retain_until)
        current = self.get_lock(key, version_id)
        if current is not None and current.retain_until >= until:
            return False
        if current is not None and current.mode == "COMPLIANCE":
            mode = "COMPLIANCE"
        self.set_retention(key, version_id, mode=mode, retain_until=until)
        return True

    def set_legal_hold(self, key: str, version_id: str | None, on: bool) -> None:
        """Place (``on=True``) or release a legal hold on one version."""
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "LegalHold": {"Status": "ON" if on else "OFF"},
        }
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            self.client.put_object_legal_hold(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            self._refused(exc, f"{'place' if on else 'release'} a legal hold", key, version_id)

    def delete_version(self, key: str, version_id: str, *, bypass_governance: bool = False) -> None:
        """Delete one version for good; the server refuses while it is locked or held."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "VersionId": version_id}
        if bypass_governance:
            kwargs["BypassGovernanceRetention"] = True
        try:
            self.client.delete_object(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            self._refused(
                exc,
                "delete a locked or held version"
                + (" (even with governance bypass)" if bypass_governance else ""),
                key,
                version_id,
            )
