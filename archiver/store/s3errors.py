"""Translation of botocore exceptions into :mod:`archiver.errors`, for the object store only."""

from __future__ import annotations

import os
from typing import Any, NoReturn

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
    ProfileNotFound,
)

from archiver.errors import BucketNotLockedError, ConfigError, RetentionError, StorageError

__all__ = [
    "CONDITIONAL_CODES",
    "NOT_FOUND_CODES",
    "BUCKET_NAME_RULE",
    "error_code",
    "http_status",
    "profile_not_found",
    "raise_refused",
    "raise_translated",
]

# Error codes meaning "the bytes that arrived are not the bytes that were sent".
_DIGEST_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
CONDITIONAL_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}
NOT_FOUND_CODES = {"404", "NoSuchKey", "NoSuchVersion", "NotFound"}
_REFUSED_CODES = {"AccessDenied", "InvalidRequest", "InvalidArgument", "MethodNotAllowed"}
# The server does not accept these credentials at all: a setting to fix, not a storage failure.
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "InvalidClientTokenId",
    "AuthorizationHeaderMalformed",
}
BUCKET_NAME_RULE = (
    "S3 bucket names are 3-63 lowercase letters, digits, '.' and '-', starting and ending "
    "with a letter or digit"
)


def error_code(exc: ClientError) -> str:
    """The S3 error code of a refusal (``NoSuchKey``, ``AccessDenied``...), or ""."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int | None:
    """The HTTP status of a refusal, if botocore recorded one."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def raise_translated(exc: Exception, action: str, *, bucket: str, **context: Any) -> NoReturn:
    """Translate a botocore exception into our error tree (never returns)."""
    context = {"bucket": bucket, **context}
    if isinstance(exc, NoCredentialsError):
        raise ConfigError(
            "no S3 credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
            **context,
        ) from exc
    if isinstance(exc, ProfileNotFound):
        raise profile_not_found(exc) from exc
    if isinstance(exc, ParamValidationError) and "Invalid bucket name" in str(exc):
        raise ConfigError(
            f"invalid bucket name {bucket!r} (--bucket / ARCHIVER_BUCKET): {BUCKET_NAME_RULE}",
            **context,
        ) from exc
    if isinstance(exc, BotoCoreError):
        raise StorageError(f"{action} failed: {exc}", **context) from exc
    assert isinstance(exc, ClientError)
    code, status = error_code(exc), http_status(exc)
    message = exc.response.get("Error", {}).get("Message", "")
    context.update(code=code or None, status=status)
    if code in _DIGEST_CODES:
        raise StorageError(
            f"{action}: the server refused the upload because the bytes it received do not "
            "match their SHA-256 checksum (corrupted in transit, or the local file changed)",
            **context,
        ) from exc
    if code in _CREDENTIAL_CODES:
        raise ConfigError(
            f"the S3 server refused the credentials ({code}: {message}); check AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, and AWS_ENDPOINT_URL_S3",
            **context,
        ) from exc
    if code == "InvalidBucketName":
        raise ConfigError(
            f"invalid bucket name {bucket!r} (--bucket / ARCHIVER_BUCKET): {BUCKET_NAME_RULE}",
            **context,
        ) from exc
    if code == "NoSuchBucket":
        raise BucketNotLockedError(
            f"bucket {bucket!r} does not exist; create it with `archiver init-bucket {bucket}`",
            **context,
        ) from exc
    raise StorageError(f"{action} failed: {code or status} {message}".strip(), **context) from exc


def profile_not_found(exc: ProfileNotFound, source: str = "AWS_PROFILE") -> ConfigError:
    """The one-line error for a profile (from ``source``: ``AWS_PROFILE`` or ``--profile``)
    that no config file defines."""
    profile = exc.kwargs.get("profile") or os.environ.get("AWS_PROFILE", "")
    config_file = os.path.expanduser(os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config")
    credentials_file = os.path.expanduser(
        os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
    )
    return ConfigError(
        f"AWS profile {profile!r} ({source}) is not defined in {config_file} or "
        f"{credentials_file}: add it there, or name another profile (or none) and set "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
    )


def raise_refused(
    exc: Exception, action: str, *, bucket: str, key: str, version_id: str | None, **context: Any
) -> NoReturn:
    """Retention / hold / delete refusals become RetentionError; the rest is translated by
    :func:`raise_translated`."""
    if isinstance(exc, ClientError) and (
        error_code(exc) in _REFUSED_CODES or http_status(exc) in (400, 403)
    ):
        raise RetentionError(
            f"the server refused to {action}",
            bucket=bucket,
            key=key,
            version_id=version_id,
            code=error_code(exc),
            **context,
        ) from exc
    raise_translated(exc, action, bucket=bucket, key=key, version_id=version_id)
