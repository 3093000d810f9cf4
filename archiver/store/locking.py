"""Object Lock operations on stored versions: read, set and extend retention, legal holds,
and deleting a version (governance bypass only when asked)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from archiver.common.time import iso
from archiver.errors import (
    StorageError,
)
from archiver.store.base import S3Base
from archiver.store.s3errors import (
    raise_refused,
)
from archiver.store.types import (
    Lock,
    Mode,
    whole_second_utc,
)

if TYPE_CHECKING:
    pass


__all__ = ["LockOps"]


class LockOps(S3Base):
    """Retention, legal hold and deletion of object versions."""

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
