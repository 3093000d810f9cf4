"""The one problem type: something wrong (or worth a notice) found while archiving, verifying,
reindexing, planning a purge or loading a dossier.

A problem is data, not an exception: the work goes on and every problem is reported at the
end. ``Problem.to_dict()`` gives the JSON shape every command prints and every manifest stores:
``{"type": kind, "message": ..., <context fields that are set>}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from archiver.common.redact import redact_urls, strip_query
from archiver.errors import ArchiverError

__all__ = ["Problem", "ProblemKind", "Severity"]

Severity = Literal["error", "warning", "notice"]


class ProblemKind(StrEnum):
    """Every kind of problem, by the ``type`` string the JSON output has always used."""

    # verify: the archive of a debt
    MANIFEST_INVALID = "ManifestInvalid"
    MANIFEST_MISMATCH = "ManifestMismatch"
    CHAIN_BROKEN = "ChainBroken"
    OBJECT_MISSING = "ObjectMissing"
    DELETE_MARKER = "DeleteMarker"
    SIZE_MISMATCH = "SizeMismatch"
    CHECKSUM_MISMATCH = "ChecksumMismatch"
    LOCK_WEAKER = "LockWeaker"
    HOLD_MISSING = "HoldMissing"
    DOSSIER_MISSING = "DossierMissing"
    DOSSIER_MISMATCH = "DossierMismatch"
    DOSSIER_RENDERER_CHANGED = "DossierRendererChanged"
    DOSSIER_NOT_RERENDERED = "DossierNotRerendered"
    DOSSIER_UNPROVEN = "DossierUnproven"
    DOSSIER_RECEIPT_MISSING = "DossierReceiptMissing"
    DOSSIER_RECEIPT_INVALID = "DossierReceiptInvalid"
    STALE_UPLOAD = "StaleUpload"
    # verify and archive: the RFC 3161 time-stamp tokens of the manifests
    TIMESTAMP_MISSING = "TimestampMissing"  # no token (a notice in verify, a warning in a run)
    TIMESTAMP_MISMATCH = "TimestampMismatch"  # stamps other bytes (another manifest's token)
    TIMESTAMP_UNTRUSTED = "TimestampUntrusted"  # not signed by a TSA of ARCHIVER_TSA_CA
    TIMESTAMP_INVALID = "TimestampInvalid"  # garbled, not granted, bad signature or usage
    # verify: the chain of sync run records (sync/runs/)
    RUN_RECORD_INVALID = "RunRecordInvalid"
    RUN_CHAIN_BROKEN = "RunChainBroken"
    RUN_CHAIN_FORK = "RunChainFork"
    RUN_MANIFEST_MISMATCH = "RunManifestMismatch"
    # pack verify: an evidence pack, checked offline
    PACK_INVALID = "PackInvalid"
    PACK_UNEXPECTED_FILE = "PackUnexpectedFile"
    PACK_PROFILE = "PackProfileMismatch"
    PACK_TOKEN_MISMATCH = "PackTokenMismatch"
    PACK_TOKEN_MISSING = "PackTokenMissing"
    # dossier: loading what a manifest names
    MANIFEST_NOT_CANONICAL = "ManifestNotCanonical"
    RECORD_MISSING = "RecordMissing"
    # archive: a listing that kept changing while read (followups may be missing)
    LISTING_UNSTABLE = "ListingUnstable"
    # archive: a debt or an object that could not be archived (error-tree class names)
    DEBT_UNAVAILABLE = "DebtUnavailable"
    CONFIG_ERROR = "ConfigError"
    VALIDATION_ERROR = "ValidationError"
    UNSAFE_ID = "UnsafeIdError"
    API_ERROR = "ApiError"
    API_AUTH = "ApiAuthError"
    API_CREDENTIALS = "ApiCredentialsError"
    API_NOT_FOUND = "ApiNotFoundError"
    API_RATE_LIMIT = "ApiRateLimitError"
    API_RETRIES_EXCEEDED = "ApiRetriesExceededError"
    BUDGET_EXHAUSTED = "BudgetExhaustedError"
    MEDIA_ERROR = "MediaError"
    MEDIA_HOST_NOT_ALLOWED = "MediaHostNotAllowedError"
    MEDIA_EXPIRED = "MediaExpiredError"
    MEDIA_CONTENT = "MediaContentError"
    STORAGE_ERROR = "StorageError"
    BUCKET_NOT_LOCKED = "BucketNotLockedError"
    OBJECT_CONFLICT = "ObjectConflictError"
    MANIFEST_RACE = "ManifestRaceError"
    RETENTION_ERROR = "RetentionError"
    TIMESTAMP_ERROR = "TimestampError"
    INTEGRITY_ERROR = "IntegrityError"
    POLICY_ERROR = "PolicyError"
    UNEXPECTED = "UnexpectedError"
    # reindex: objects the catalog could not take in
    REINDEX_CHAIN_BROKEN = "chain_broken"
    INVALID_MANIFEST = "invalid_manifest"
    UNPARSEABLE_MANIFEST = "unparseable_manifest"
    UNREADABLE_MANIFEST = "unreadable_manifest"
    MANIFEST_KEY_MISMATCH = "manifest_key_mismatch"
    SEQUENCE_GAP = "sequence_gap"
    UNPARSEABLE_EVENT = "unparseable_event"
    UNREADABLE_EVENT = "unreadable_event"
    UNREADABLE_DOSSIER = "unreadable_dossier"
    # purge planning
    NO_MANIFEST = "no_manifest"
    NO_POLICY = "no_policy"
    POLICY_CHANGED = "policy_changed"
    POLICY_UNAVAILABLE = "policy_unavailable"
    MISSING = "missing"
    SHA256_MISMATCH = "sha256_mismatch"


# Context fields of an error that a problem carries over (``url`` under the name ``source``).
_CARRIED = ("followup_id", "kind", "url", "field", "status", "severity", "api_message", "path")


@dataclass(frozen=True)
class Problem:
    """One thing wrong, with what is needed to find and fix it.

    ``expected``/``found`` say what differed; ``details`` holds further JSON-friendly context
    (media kind, source URL without query, HTTP status, ...). ``severity`` "warning" and
    "notice" are facts worth reporting that do not make a result fail.
    """

    kind: ProblemKind
    message: str
    debt_id: str | None = None
    key: str | None = None
    expected: str | None = None
    found: str | None = None
    severity: Severity = "error"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        """Whether this problem means something is missing or wrong (not a warning/notice)."""
        return self.severity == "error"

    @classmethod
    def from_exception(cls, exc: BaseException, **context: Any) -> Problem:
        """The problem an error stands for: its class name is the kind, its context fields
        become details; a foreign exception is ``UnexpectedError`` with its class named."""
        details = {k: v for k, v in context.items() if v is not None}
        debt_id = details.pop("debt_id", None)
        key = details.pop("key", None)
        severity: Severity = "error"
        if isinstance(exc, ArchiverError):
            for name in _CARRIED:
                out = "source" if name == "url" else name
                if name in exc.context and out not in details:
                    details[out] = exc.context[name]
            if details.get("severity") in ("warning", "notice"):
                severity = details.pop("severity")
            try:
                kind = ProblemKind(type(exc).__name__)
            except ValueError:
                kind = ProblemKind.UNEXPECTED
            message = exc.message
        else:
            kind = ProblemKind.UNEXPECTED
            details.setdefault("exception", type(exc).__name__)
            message = redact_urls(str(exc)) or type(exc).__name__
        if "source" in details and isinstance(details["source"], str):
            details["source"] = strip_query(details["source"])
        return cls(kind, message, debt_id=debt_id, key=key, severity=severity, details=details)

    def to_dict(self) -> dict[str, Any]:
        """``{"type", "message", debt_id?, key?, expected?, found?, severity?, **details}``."""
        out: dict[str, Any] = {"type": self.kind.value, "message": self.message}
        for name in ("debt_id", "key", "expected", "found"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.severity != "error":
            out["severity"] = self.severity
        out.update(self.details)
        return out
