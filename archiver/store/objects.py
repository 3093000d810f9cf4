"""The WORM object store (:class:`ObjectStore`): store/ is the only package that talks to S3.

Every write is conditional (``If-None-Match: *``) and carries a SHA-256 checksum the server
verifies, an Object Lock retention and the full-object SHA-256 as metadata. A key that already
holds the same bytes is a rerun, not an error; a key holding other bytes is a loud
:class:`ObjectConflictError`. Nothing is ever overwritten.

botocore exceptions are translated into the error tree of :mod:`archiver.errors` by
:mod:`archiver.store.s3errors`, and nowhere else. Value types live in :mod:`.types`, client
setup and tuning in :mod:`.settings`, the write helpers in :mod:`.transfer`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, cast

from botocore.exceptions import BotoCoreError, ClientError

from archiver.common.time import iso
from archiver.errors import (
    BucketNotLockedError,
    ConfigError,
    ObjectConflictError,
    RetentionError,
    StorageError,
)
from archiver.store.s3errors import (
    CONDITIONAL_CODES,
    NOT_FOUND_CODES,
    error_code,
    http_status,
    raise_refused,
    raise_translated,
)
from archiver.store.settings import StorageSettings, sign_with_known_sha256
from archiver.store.transfer import LargeBlocks, put_object_args, upload_parts
from archiver.store.types import (
    MODES,
    Lock,
    Mode,
    MultipartUpload,
    ObjectInfo,
    StoredObject,
    VersionInfo,
    whole_second_utc,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import LifecycleRuleTypeDef

__all__ = ["ABORT_RULE_ID", "ObjectStore"]

# The lifecycle rule of ours; the bucket's other rules are kept as they are.
ABORT_RULE_ID = "archiver-abort-incomplete-multipart-uploads"
# Answers of a server that has no lifecycle configuration at all.
_UNSUPPORTED_CODES = {"NotImplemented", "MethodNotAllowed", "UnsupportedOperation"}


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
        sign_with_known_sha256(client)

    # -- error translation ------------------------------------------------------------------

    def _fail(self, exc: Exception, action: str, **context: Any) -> NoReturn:
        """Translate a botocore exception into our error tree (never returns)."""
        raise_translated(exc, action, bucket=self.bucket, **context)

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
            code = error_code(exc)
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
            if error_code(exc) == "ObjectLockConfigurationNotFoundError":
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

    def put_abort_multipart_lifecycle(self, days: int) -> bool:
        """Have the server abort multipart uploads still incomplete ``days`` after they began
        (a killed process leaves its parts behind otherwise). Other lifecycle rules of the
        bucket are kept. Returns False when the server does not support lifecycle rules."""
        rule: LifecycleRuleTypeDef = {
            "ID": ABORT_RULE_ID,
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days},
        }
        try:
            try:
                current = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
                rules: list[Any] = [r for r in current["Rules"] if r.get("ID") != ABORT_RULE_ID]
            except ClientError as exc:
                if error_code(exc) != "NoSuchLifecycleConfiguration":
                    raise
                rules = []
            self.client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": [*rules, rule]}
            )
        except ClientError as exc:
            if error_code(exc) in _UNSUPPORTED_CODES or http_status(exc) in (405, 501):
                return False
            self._fail(exc, "set the lifecycle rule for incomplete uploads")
        except BotoCoreError as exc:
            self._fail(exc, "set the lifecycle rule for incomplete uploads")
        return True

    # -- writes -----------------------------------------------------------------------------

    def _write_failed(
        self, exc: Exception, key: str, sha256: str, size: int, lock: Lock
    ) -> StoredObject:
        """Handle a refused write: a rerun (same bytes) is fine, anything else raises."""
        if isinstance(exc, ClientError) and (
            error_code(exc) in CONDITIONAL_CODES or http_status(exc) in (409, 412)
        ):
            return self._existing(key, sha256, size)
        if (
            isinstance(exc, ClientError)
            and http_status(exc) == 400
            and lock.retain_until <= datetime.now(UTC)
        ):
            raise RetentionError(
                f"the server refused retain-until {iso(lock.retain_until)}: it must be in the "
                "future",
                bucket=self.bucket,
                key=key,
                retain_until=iso(lock.retain_until),
                code=error_code(exc),
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
            with LargeBlocks(path.open("rb"), self.settings.read_chunk) as body:
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
        args = put_object_args(self.bucket, key, sha256, lock, content_type, metadata)
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
        args = put_object_args(self.bucket, key, sha256, lock, content_type, metadata)
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
            parts = upload_parts(
                self.client, self.bucket, key, path, upload_id, sha256, self.settings
            )
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

    # -- reads ------------------------------------------------------------------------------

    def head(self, key: str, version_id: str | None = None) -> ObjectInfo | None:
        """HEAD one object (latest or a given version); None if it does not exist."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            resp = self.client.head_object(**kwargs)
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES or http_status(exc) == 404:
                return None
            self._fail(exc, f"head {key}", key=key, version_id=version_id)
        except BotoCoreError as exc:
            self._fail(exc, f"head {key}", key=key, version_id=version_id)
        return ObjectInfo.from_head(key, resp)

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
                    yield VersionInfo.from_listing(item, delete_marker=False)
                for marker in page.get("DeleteMarkers", []):
                    yield VersionInfo.from_listing(marker, delete_marker=True)
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, f"list versions of {prefix}", prefix=prefix)

    def list_multipart_uploads(self, prefix: str) -> Iterator[MultipartUpload]:
        """Every multipart upload under ``prefix`` that was neither completed nor aborted."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Uploads", []):
                    yield MultipartUpload.from_listing(item)
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, f"list multipart uploads of {prefix}", prefix=prefix)

    def abort_multipart_upload(self, key: str, upload_id: str) -> bool:
        """Abort one multipart upload, its parts deleted; False if it was already gone."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if error_code(exc) == "NoSuchUpload":
                return False
            self._fail(exc, f"abort the multipart upload of {key}", key=key, upload_id=upload_id)
        except BotoCoreError as exc:
            self._fail(exc, f"abort the multipart upload of {key}", key=key, upload_id=upload_id)
        return True

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
        raise_refused(exc, action, bucket=self.bucket, key=key, version_id=version_id, **context)

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
        until = whole_second_utc(retain_until)
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
        until = whole_second_utc(retain_until)
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
