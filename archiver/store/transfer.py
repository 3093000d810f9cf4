"""Writing to S3: the arguments of a locked PUT, large-block file reads, multipart parts."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from botocore.exceptions import BotoCoreError, ClientError

from archiver.errors import StorageError
from archiver.store.s3errors import raise_translated
from archiver.store.settings import StorageSettings
from archiver.store.types import Lock

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["FileSlice", "put_object_args", "upload_parts"]


class FileSlice(io.RawIOBase):
    """``length`` bytes of a file from ``offset``, read in large blocks: a file (or one part
    of a multipart upload) sent from the file itself, so memory stays at one block. Reads
    return up to ``block`` bytes even when asked for less: http.client sends a file body
    8 KiB at a time, a Python loop of a thousand steps per 8 MB otherwise. Seekable within
    the slice (botocore rewinds a body to retry it)."""

    def __init__(self, path: Path, offset: int, length: int, block: int) -> None:
        self._start = offset
        self._length = length
        self._block = block
        self._pos = 0
        self._raw = path.open("rb")
        try:
            self._raw.seek(offset)
        except BaseException:
            self._raw.close()
            raise

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = min(max(0, base + offset), self._length)
        self._raw.seek(self._start + self._pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        if size == 0:
            return b""
        left = self._length - self._pos
        want = left if size is None or size < 0 else min(left, max(size, self._block))
        data = self._raw.read(want) if want > 0 else b""
        self._pos += len(data)
        return data

    def close(self) -> None:
        self._raw.close()
        super().close()


def upload_parts(
    client: S3Client,
    bucket: str,
    key: str,
    path: Path,
    upload_id: str,
    sha256: str,
    settings: StorageSettings,
) -> list[dict[str, Any]]:
    """Upload ``path`` as the parts of multipart upload ``upload_id``, each with its SHA-256.

    Each part is hashed by reading it from the file, then sent from the file (the page cache
    serves the second read): one read block in memory, not one part. Returns the parts for
    ``CompleteMultipartUpload``. Raises :class:`StorageError` if the file needs more than
    10,000 parts or no longer hashes to ``sha256``.
    """
    whole = hashlib.sha256()
    parts: list[dict[str, Any]] = []
    size = path.stat().st_size
    count = max(1, -(-size // settings.part_size))
    if count > 10_000:  # S3 allows at most 10,000 parts
        raise StorageError(
            f"{path} needs more than 10,000 parts; raise part_size", bucket=bucket, key=key
        )
    for number in range(1, count + 1):
        offset = (number - 1) * settings.part_size
        length = min(settings.part_size, size - offset)
        part_hash = hashlib.sha256()
        with FileSlice(path, offset, length, settings.read_chunk) as piece:
            read = 0
            while block := piece.read(settings.read_chunk):
                part_hash.update(block)
                whole.update(block)
                read += len(block)
            if read != length:
                raise StorageError(
                    f"{path} changed while uploading: part {number} has {read} of its "
                    f"{length} bytes; upload aborted",
                    bucket=bucket,
                    key=key,
                )
            digest = base64.b64encode(part_hash.digest()).decode("ascii")
            piece.seek(0)
            try:
                resp = client.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=cast(BinaryIO, piece),
                    ContentLength=length,
                    ChecksumSHA256=digest,
                    ChecksumAlgorithm="SHA256",
                )
            except (ClientError, BotoCoreError) as exc:
                raise_translated(exc, f"upload part {number} of {key}", bucket=bucket, key=key)
        parts.append({"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": digest})
    if whole.hexdigest() != sha256:
        raise StorageError(
            f"{path} changed while uploading: its SHA-256 is now {whole.hexdigest()}, "
            f"expected {sha256}; upload aborted",
            bucket=bucket,
            key=key,
        )
    return parts


def put_object_args(
    bucket: str,
    key: str,
    sha256: str,
    lock: Lock,
    content_type: str,
    metadata: dict[str, str] | None,
) -> dict[str, Any]:
    """What every write carries: content type, the Object Lock, and the SHA-256 as metadata."""
    args: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "ContentType": content_type,
        "ObjectLockMode": lock.mode,
        "ObjectLockRetainUntilDate": lock.retain_until,
        "Metadata": {**(metadata or {}), "sha256": sha256},
    }
    if lock.legal_hold:
        args["ObjectLockLegalHoldStatus"] = "ON"
    return args
