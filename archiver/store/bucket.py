"""Bucket-level operations of the store: create and check an Object-Lock bucket, its default
retention, the abort-incomplete-uploads lifecycle rule, and stale multipart uploads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from archiver.errors import (
    BucketNotLockedError,
    ConfigError,
    StorageError,
)
from archiver.store.base import S3Base
from archiver.store.s3errors import (
    error_code,
    http_status,
)
from archiver.store.types import (
    MODES,
    Mode,
    MultipartUpload,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import LifecycleRuleTypeDef


# The lifecycle rule of ours; the bucket's other rules are kept as they are.
ABORT_RULE_ID = "archiver-abort-incomplete-multipart-uploads"
# Answers of a server that has no lifecycle configuration at all.
_UNSUPPORTED_CODES = {"NotImplemented", "MethodNotAllowed", "UnsupportedOperation"}


__all__ = ["ABORT_RULE_ID", "BucketOps"]


class BucketOps(S3Base):
    """Bucket configuration and multipart-upload housekeeping."""

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
