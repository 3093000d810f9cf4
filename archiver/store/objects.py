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
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from botocore.exceptions import BotoCoreError, ClientError

from archiver.common.time import iso
from archiver.errors import (
    ObjectConflictError,
    RetentionError,
    StorageError,
)
from archiver.store.bucket import BucketOps
from archiver.store.locking import LockOps
from archiver.store.s3errors import (
    CONDITIONAL_CODES,
    error_code,
    http_status,
)
from archiver.store.transfer import FileSlice, put_object_args, upload_parts
from archiver.store.types import (
    Lock,
    ObjectInfo,
    StoredObject,
    VersionInfo,
)

if TYPE_CHECKING:
    from archiver.store.smallputs import SmallPuts

__all__ = ["ObjectStore"]


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


class ObjectStore(BucketOps, LockOps):
    """One Object-Lock bucket, seen through a boto3 S3 client.

    ``small``: when set (:func:`archiver.store.smallputs.small_puts`), :meth:`put_bytes`
    sends through it, and so does :meth:`put_file` for files up to ``small_file_bytes``:
    the same conditional, checksummed, locked PUT at a third of boto3's CPU per request
    (records, manifests, receipts, small media: thousands per company run)."""

    small: SmallPuts | None = None

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
        if self.small is not None:
            return self.small.put_bytes(
                key, data, lock=lock, content_type=content_type, metadata=metadata
            )
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

        Files up to ``settings.small_file_bytes`` go in one PUT from memory through
        :attr:`small` when it is set; up to ``multipart_threshold`` in one streamed PUT;
        larger ones in parts of ``part_size`` bytes, each with its own SHA-256, completed
        conditionally. The server verifies every checksum; memory use stays at one part at
        most (one small file, for the first kind).
        """
        path = Path(path)
        actual = path.stat().st_size
        if actual != size:
            raise StorageError(
                f"{path} is {actual} bytes, expected {size}", bucket=self.bucket, key=key
            )
        settings = self.settings
        if self.small is not None and size <= min(
            settings.small_file_bytes, settings.multipart_threshold
        ):
            with path.open("rb") as file:
                data = file.read(size + 1)
            if len(data) != size:
                raise StorageError(
                    f"{path} changed before its upload: {len(data)} bytes, expected {size}",
                    bucket=self.bucket,
                    key=key,
                )
            # S3 checks the bytes against the SHA-256 measured as they were downloaded.
            return self.small.put_measured(
                key, data, sha256=sha256, lock=lock, content_type=content_type, metadata=metadata
            )
        if size <= self.settings.multipart_threshold:
            with FileSlice(path, 0, size, self.settings.read_chunk) as body:
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

    def iter_chunks(self, key: str, version_id: str | None = None) -> Iterator[bytes]:
        """Stream one object in ``read_chunk`` pieces."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        resp = self._call(f"get {key}", self.client.get_object, **kwargs)
        yield from self._body_chunks(resp["Body"], key, version_id)

    def _body_chunks(self, body: Any, key: str, version_id: str | None) -> Iterator[bytes]:
        """A GET's body in ``read_chunk`` pieces, closed at the end; failures translated."""
        try:
            yield from body.iter_chunks(self.settings.read_chunk)
        except BotoCoreError as exc:
            self._fail(exc, f"read {key}", key=key, version_id=version_id)
        finally:
            body.close()

    def read_hashed(
        self, key: str, version_id: str | None = None
    ) -> tuple[ObjectInfo, str, int] | None:
        """GET one object and re-hash it as it streams: ``(what a HEAD would say, sha256 hex,
        bytes read)``; None if it does not exist. One request where HEAD + GET take two."""
        resp = self._unless_missing("get", self.client.get_object, key, version_id)
        if resp is None:
            return None
        digest = hashlib.sha256()
        size = 0
        for chunk in self._body_chunks(resp["Body"], key, version_id):
            digest.update(chunk)
            size += len(chunk)
        return ObjectInfo.from_head(key, resp), digest.hexdigest(), size

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
