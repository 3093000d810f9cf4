"""Which retention policy a debt is archived under: the one its latest manifest names.

Decisions, written down so a compliance officer can check them:

* **A debt's policy is sticky.** A debt archived before keeps the policy its latest manifest
  names, found by name in the :class:`~archiver.retention.registry.PolicyRegistry` (the
  user's policy folders, then the shipped ones). The configured policy (``ARCHIVER_POLICY``,
  or ``default``) applies to debts archived for the first time only, so that a scheduled run
  without options never moves a debt to another policy.
* **The file may have changed.** When the file found has another SHA-256 than the manifest
  recorded, the current file applies and a warning says so (the next manifest records the new
  SHA-256). A policy that cannot be found stops the debt with a :class:`ConfigError`: guessing
  another policy for evidence is not an option.
* **Changing it is explicit.** A policy asked for by name (``--policy``) that differs from the
  manifest's is refused unless the change is asked for too (``--change-policy`` with a
  reason); the refusal names both policies and what the change would shorten or weaken
  (:func:`weakenings`). An accepted change is recorded in the next manifest
  (``policy_change``: from, to, reason, actor, time, weakenings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from archiver.common.problems import Problem, ProblemKind
from archiver.common.time import iso
from archiver.errors import ArchiverError, ConfigError
from archiver.retention.durations import never_shorter
from archiver.retention.policies import OBJECT_KINDS, RetentionPolicy
from archiver.retention.registry import PolicyRegistry

__all__ = ["PolicyChange", "PolicyChoice", "PolicySelector", "weakenings"]


# Anchor dates from the earliest to the latest: a call comes before the debt's last activity,
# which comes before the archiving.
_ANCHOR_ORDER = {"call_date": 0, "last_activity": 1, "archived_at": 2}


def weakenings(old: RetentionPolicy, new: RetentionPolicy) -> list[str]:
    """How moving from ``old`` to ``new`` can shorten or weaken retention, one text each: the
    mode (COMPLIANCE to GOVERNANCE), every kind whose minimum is shorter from some start date,
    every kind counted from an earlier date (its minimum may then end sooner, however long).
    Empty: nothing can get shorter or weaker."""
    found = []
    if old.mode == "COMPLIANCE" and new.mode != "COMPLIANCE":
        found.append(f"mode {old.mode} -> {new.mode}")
    for kind in OBJECT_KINDS:
        was, now = old.rules[kind], new.rules[kind]
        if not never_shorter(now.min, was.min):
            found.append(f"{kind} min {was.min} -> {now.min}")
        if _ANCHOR_ORDER[now.anchor] < _ANCHOR_ORDER[was.anchor]:
            found.append(f"{kind} counted from {now.anchor}, earlier than {was.anchor}")
    return found


@dataclass(frozen=True)
class PolicyChange:
    """An accepted change of a debt's policy, as the manifest records it."""

    previous: dict[str, Any]  # the manifest reference of the policy left
    policy: RetentionPolicy
    reason: str
    actor: str | None
    at: datetime
    weaker: list[str]

    def to_json(self) -> dict[str, Any]:
        """The manifest's ``policy_change``."""
        out: dict[str, Any] = {
            "from": self.previous,
            "to": self.policy.manifest_ref(),
            "reason": self.reason,
            "at": iso(self.at),
            "weaker": self.weaker,
        }
        if self.actor:
            out["actor"] = self.actor
        return out


@dataclass(frozen=True)
class PolicyChoice:
    """The policy of one debt's run; the change it makes, if any; warnings to report."""

    policy: RetentionPolicy
    change: PolicyChange | None = None
    problems: list[Problem] = field(default_factory=list)
    kept_from: int | None = None  # the sequence of the manifest whose policy is kept


@dataclass(frozen=True)
class PolicySelector:
    """Chooses the policy of each debt of a run (see the module docstring).

    ``configured``: the run's policy; ``explicit``: it was asked for by name (``--policy``),
    not only configured; ``change_reason``: the change of policy is asked for, and why.
    """

    configured: RetentionPolicy
    registry: PolicyRegistry = field(default_factory=PolicyRegistry)
    explicit: bool = False
    change_reason: str | None = None
    actor: str | None = None

    def choose(self, debt_id: str, manifest: dict[str, Any] | None, now: datetime) -> PolicyChoice:
        """The policy of ``debt_id``, whose latest manifest is ``manifest`` (None: archived
        for the first time). Raises :class:`ConfigError` when the manifest's policy cannot be
        found, or when another one is asked for without asking for the change."""
        if manifest is None:
            return PolicyChoice(self.configured)
        ref: dict[str, Any] = dict(manifest.get("policy") or {})
        sequence = manifest.get("sequence")
        name = ref.get("name")
        if name == self.configured.name:
            return PolicyChoice(
                self.configured,
                problems=_changed_file(debt_id, ref, self.configured, sequence),
                kept_from=sequence,
            )
        if not self.explicit:
            current = self._load(debt_id, ref, sequence)
            return PolicyChoice(
                current, problems=_changed_file(debt_id, ref, current, sequence), kept_from=sequence
            )
        try:
            old: RetentionPolicy | None = self.registry.load(str(name))
        except ArchiverError:
            old = None  # cannot compare; the change still needs asking for
        weaker = (
            weakenings(old, self.configured)
            if old is not None
            else [f"unknown: policy {name!r} is not found, so cannot be compared"]
        )
        if self.change_reason is None:
            shorter = f"; it would shorten or weaken: {', '.join(weaker)}" if weaker else ""
            raise ConfigError(
                f"debt {debt_id} is archived under policy {name!r} (manifest {sequence}); "
                f"--policy {self.configured.name!r} would change it{shorter}. A debt keeps its "
                "policy: to change it, add --change-policy --reason TEXT (recorded in the "
                f"manifest), or leave --policy out to keep {name!r}",
                debt_id=debt_id,
                expected=str(name),
                found=self.configured.name,
            )
        change = PolicyChange(ref, self.configured, self.change_reason, self.actor, now, weaker)
        return PolicyChoice(self.configured, change=change)

    def _load(self, debt_id: str, ref: dict[str, Any], sequence: Any) -> RetentionPolicy:
        name = ref.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f"the latest manifest of debt {debt_id} (manifest {sequence}) names no policy; "
                "say which applies with --policy NAME --change-policy --reason TEXT",
                debt_id=debt_id,
            )
        try:
            return self.registry.load(name)
        except ConfigError as exc:
            raise ConfigError(
                f"debt {debt_id} is archived under policy {name!r} (manifest {sequence}), "
                f"which is not found ({exc}); put {name}.toml back in a folder of "
                "ARCHIVER_POLICY_DIR, or pass --policy FILE of that policy, or change the "
                "debt's policy with --policy NAME --change-policy --reason TEXT",
                debt_id=debt_id,
                expected=name,
                searched=", ".join(str(d) for d in self.registry.dirs),
            ) from None


def _changed_file(
    debt_id: str, ref: dict[str, Any], policy: RetentionPolicy, sequence: Any
) -> list[Problem]:
    """A warning when ``policy``'s file is not the one the manifest recorded."""
    recorded = ref.get("sha256")
    if not recorded or recorded == policy.sha256:
        return []
    return [
        Problem(
            ProblemKind.POLICY_CHANGED,
            f"policy {policy.name!r} has changed since manifest {sequence} was written "
            f"(recorded sha256 {recorded[:12]}..., now {policy.sha256[:12]}... from "
            f"{policy.source_path}); the current file applies",
            debt_id=debt_id,
            expected=recorded,
            found=policy.sha256,
            severity="warning",
        )
    ]
