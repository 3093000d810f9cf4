"""The one error tree of getbill-archiver.

    ArchiverError                      every error this package raises on purpose
    ├── ConfigError                    bad or missing settings, unknown policy name, ...
    ├── ValidationError                a record, manifest or policy that does not fit its schema
    │   └── UnsafeIdError              an id that cannot be used as an S3 key segment
    ├── ApiError                       the getbill API answered an error (status, path, message)
    │   ├── ApiAuthError               401 / 403
    │   │   └── ApiCredentialsError    credentials or scopes refused (also a ConfigError)
    │   ├── ApiNotFoundError           404
    │   ├── ApiRateLimitError          429 and waiting would exceed the configured maximum
    │   ├── ApiRetriesExceededError    5xx / timeouts / connection errors, attempts exhausted
    │   └── BudgetExhaustedError       the run's request budget is spent: the request was not sent
    ├── MediaError                     one media file could not be fetched as evidence
    │   ├── MediaHostNotAllowedError   host / scheme / redirect outside the allowlist
    │   ├── MediaExpiredError          the signed URL has expired (refresh and retry)
    │   └── MediaContentError          HTML, empty, truncated, wrong length
    ├── StorageError                   S3 refused or failed
    │   ├── BucketNotLockedError       no such bucket, or no Object Lock (also a ConfigError)
    │   ├── ObjectConflictError        a key exists with a different SHA-256: never overwritten
    │   ├── ManifestRaceError          another run wrote the same manifest sequence first
    │   └── RetentionError             the server refused a retention / hold change
    ├── TimestampError                 a time-stamping authority gave no usable token
    ├── IntegrityError                 what verify finds: typed problems, collected
    └── PolicyError                    a retention policy file is wrong (file, field, expected)

Every error carries context fields (debt id, followup id, key, URL without its query string)
and its message never contains a token, a client secret or a signed query string.
Foreign exceptions (httpx, botocore) are translated in the one module that talks to that system.
"""

from __future__ import annotations

from typing import Any

from archiver.common.redact import strip_query


class ArchiverError(Exception):
    """Base of every error raised on purpose by getbill-archiver.

    ``context`` holds the facts needed to act on the error (debt_id, followup_id, key, url...).
    URLs put into the context are stripped of their query string.
    """

    def __init__(self, message: str, **context: Any) -> None:
        if "url" in context and isinstance(context["url"], str):
            context["url"] = strip_query(context["url"])
        self.message = message
        self.context = {k: v for k, v in context.items() if v is not None}
        super().__init__(message)

    def __str__(self) -> str:
        if not self.context:
            return self.message
        ctx = ", ".join(f"{k}={v}" for k, v in self.context.items())
        return f"{self.message} ({ctx})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description: ``{"type", "message", **context}``."""
        return {"type": type(self).__name__, "message": self.message, **self.context}


class ConfigError(ArchiverError):
    """Settings are missing or contradictory."""


class ValidationError(ArchiverError):
    """A record, manifest or policy does not match its schema."""


class UnsafeIdError(ValidationError):
    """An id cannot be used as an S3 key segment (``/``, ``..``, control chars, too long)."""


class ApiError(ArchiverError):
    """The getbill API answered with an error."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        path: str | None = None,
        api_message: str | None = None,
        **context: Any,
    ) -> None:
        self.status = status
        self.path = path
        self.api_message = api_message
        super().__init__(message, status=status, path=path, api_message=api_message, **context)


class ApiAuthError(ApiError):
    """401 (credentials missing or invalid) or 403 (scope or access denied)."""


class ApiCredentialsError(ApiAuthError, ConfigError):
    """The token endpoint refused the client credentials or the scopes asked for, or the API
    refused the credentials themselves (401): settings to change before anything can run."""


class ApiNotFoundError(ApiError):
    """404."""


class ApiRateLimitError(ApiError):
    """429 and the wait it asks for exceeds the configured maximum."""


class ApiRetriesExceededError(ApiError):
    """Retryable failures (5xx, timeouts, connection errors) until attempts ran out."""

    def __init__(self, message: str, *, last_exception: BaseException | None = None, **kw: Any):
        self.last_exception = last_exception
        super().__init__(message, **kw)


class BudgetExhaustedError(ApiError):
    """The run's request budget (``archiver sync --max-requests``) is spent: the request was
    not sent. What needs the API is left for the next run."""


class MediaError(ArchiverError):
    """One media file could not be fetched as evidence."""


class MediaHostNotAllowedError(MediaError):
    """Host, scheme or redirect target outside the media allowlist."""


class MediaExpiredError(MediaError):
    """The signed URL has expired (or the server says so with a 403)."""


class MediaContentError(MediaError):
    """The body is HTML, empty, truncated, or does not match Content-Length."""


class StorageError(ArchiverError):
    """S3 refused or failed an operation."""


class BucketNotLockedError(StorageError, ConfigError):
    """The bucket does not exist or has no Object Lock enabled: a setting (the bucket name)
    or a setup step (``init-bucket``) to fix, hence also a :class:`ConfigError`."""


class ObjectConflictError(StorageError):
    """A key already holds different bytes: the tool never overwrites."""


class ManifestRaceError(StorageError):
    """Another run wrote manifest N of a debt between this run's read and its write: the
    conditional PUT kept it (nothing is overwritten); this run merges onto it and retries."""


class RetentionError(StorageError):
    """The server refused a retention or legal-hold change (e.g. shortening COMPLIANCE)."""


class TimestampError(ArchiverError):
    """A time-stamping authority (RFC 3161) is down, refused, or answered with a token that
    does not stamp what was sent or is not signed by a trusted TSA."""


class IntegrityError(ArchiverError):
    """Verification found problems; ``problems`` lists them all."""

    def __init__(self, message: str, problems: list[Any] | None = None, **context: Any) -> None:
        self.problems = list(problems or [])
        super().__init__(message, **context)


class PolicyError(ArchiverError):
    """A retention policy file is wrong: ``file``, ``field`` and ``expected`` say how."""
