"""The S3 client, bucket and error translation that every part of :class:`ObjectStore` shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from archiver.store.s3errors import NOT_FOUND_CODES, error_code, http_status, raise_translated
from archiver.store.settings import StorageSettings
from archiver.store.types import ObjectInfo

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


__all__ = ["S3Base"]


class S3Base:
    """One Object-Lock bucket, seen through a boto3 S3 client (shared by the store's parts)."""

    def __init__(
        self, client: S3Client, bucket: str, settings: StorageSettings | None = None
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.settings = settings or StorageSettings()

    def _fail(self, exc: Exception, action: str, **context: Any) -> NoReturn:
        """Translate a botocore exception into our error tree (never returns)."""
        raise_translated(exc, action, bucket=self.bucket, **context)

    def _call(self, action: str, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, action, key=kwargs.get("Key"), version_id=kwargs.get("VersionId"))

    def head(self, key: str, version_id: str | None = None) -> ObjectInfo | None:
        """HEAD one object (latest or a given version); None if it does not exist."""
        resp = self._unless_missing("head", self.client.head_object, key, version_id)
        return ObjectInfo.from_head(key, resp) if resp is not None else None

    def _unless_missing(
        self, action: str, fn: Callable[..., Any], key: str, version_id: str | None
    ) -> Any:
        """``fn`` (HEAD or GET) on one object or version: its answer, or None if it does not
        exist; other failures raise, translated."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            return fn(**kwargs)
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES or http_status(exc) == 404:
                return None
            self._fail(exc, f"{action} {key}", key=key, version_id=version_id)
        except BotoCoreError as exc:
            self._fail(exc, f"{action} {key}", key=key, version_id=version_id)
