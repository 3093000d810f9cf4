"""Which lock each archived object gets, and when an earlier one must be extended.

Pure decisions over a :class:`~archiver.retention.policies.RetentionPolicy`; the archive run
applies them to S3. Retention only ever grows: an object keeps the retain-until it was stored
with unless the policy anchors its kind on the debt's last activity and that moved forward.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from archiver.retention.policies import AnchorDates, ObjectKind, RetentionPolicy, retain_until
from archiver.store.types import Lock

__all__ = ["MIN_LOCK", "extended_until", "falls_short", "follows_activity", "new_lock"]

MIN_LOCK = timedelta(days=1)
"""The shortest lock any stored object gets, even when its policy minimum has already ended."""


def new_lock(policy: RetentionPolicy, kind: ObjectKind, dates: AnchorDates, *, hold: bool) -> Lock:
    """The lock of an object stored now (``dates.archived_at``).

    A minimum that already ended (a recording older than its retention when first archived)
    still gets :data:`MIN_LOCK`: S3 refuses retain-until dates in the past, and the purge step
    deletes the object once past its maximum.
    """
    until = retain_until(policy, kind, dates)
    return Lock(policy.mode, max(until, dates.archived_at + MIN_LOCK), hold)


def follows_activity(policy: RetentionPolicy, kind: ObjectKind) -> bool:
    """Whether the policy counts this kind's retention from the debt's last activity."""
    rule = policy.rules.get(kind)
    return rule is not None and rule.anchor == "last_activity"


def extended_until(
    policy: RetentionPolicy, kind: ObjectKind, current: datetime | None, dates: AnchorDates
) -> datetime | None:
    """The later retain-until a reused object must get, or None when it keeps ``current``.

    Only kinds anchored on the last activity move, and only forward. The :data:`MIN_LOCK`
    floor of :func:`new_lock` is not applied here, so reruns do not creep forward.
    """
    if current is None or not follows_activity(policy, kind):
        return None
    wanted = retain_until(policy, kind, dates)
    return wanted if wanted > current else None


def falls_short(current: datetime | None, wanted: datetime) -> bool:
    """Whether an object locked until ``current`` (None: not locked) needs ``wanted``."""
    return current is None or current < wanted
