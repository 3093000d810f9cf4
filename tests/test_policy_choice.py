"""Which policy a debt is archived under (archiver.retention.policy_choice): pure, no S3."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fixtures.retention import short_policy_toml

from archiver.errors import ConfigError
from archiver.retention.policy_choice import PolicySelector, weakenings
from archiver.retention.registry import PolicyRegistry

SHIPPED = PolicyRegistry()
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def manifest_under(name: str, sha256: str | None = None, sequence: int = 4) -> dict:
    policy = SHIPPED.load(name) if sha256 is None else None
    return {
        "sequence": sequence,
        "policy": {
            "name": name,
            "sha256": sha256 or (policy.sha256 if policy else ""),
            "mode": "x",
        },
    }


def test_weakenings_name_the_mode_and_every_shorter_minimum() -> None:
    cfpb, fca, cnil = (
        SHIPPED.load(n) for n in ("us-cfpb-reg-f", "uk-fca", "fr-cnil-call-recording")
    )
    assert weakenings(cfpb, cfpb) == []
    weaker = weakenings(cfpb, fca)
    assert "mode COMPLIANCE -> GOVERNANCE" in weaker
    assert not any(w.startswith("mode") for w in weakenings(fca, cfpb))
    # CNIL keeps recordings 6 months: shorter than any other policy's minimum for audio.
    assert any(w.startswith("audio min") for w in weakenings(fca, cnil))


def test_a_new_debt_takes_the_configured_policy() -> None:
    fca = SHIPPED.load("uk-fca")
    choice = PolicySelector(fca, SHIPPED).choose("D-1", None, NOW)
    assert choice.policy is fca and choice.change is None and not choice.problems


def test_a_debt_keeps_its_manifests_policy_unless_told_otherwise() -> None:
    default = SHIPPED.load("default")
    choice = PolicySelector(default, SHIPPED).choose(
        "D-1", manifest_under("fr-cnil-call-recording"), NOW
    )
    assert choice.policy.name == "fr-cnil-call-recording" and choice.kept_from == 4
    assert choice.change is None and not choice.problems

    asked = PolicySelector(default, SHIPPED, explicit=True)
    with pytest.raises(ConfigError) as refused:
        asked.choose("D-1", manifest_under("fr-cnil-call-recording"), NOW)
    text = str(refused.value)
    assert "'fr-cnil-call-recording'" in text and "'default'" in text
    assert "--change-policy" in text

    moved = PolicySelector(default, SHIPPED, explicit=True, change_reason="why", actor="ops")
    choice = moved.choose("D-1", manifest_under("fr-cnil-call-recording"), NOW)
    assert choice.policy is default and choice.change is not None
    recorded = choice.change.to_json()
    assert recorded["from"]["name"] == "fr-cnil-call-recording"
    assert recorded["to"] == default.manifest_ref()
    assert recorded["reason"] == "why" and recorded["actor"] == "ops"
    assert recorded["at"] == "2026-11-30T12:00:00Z"


def test_a_changed_file_is_a_warning_and_a_missing_one_an_error(tmp_path: Path) -> None:
    (tmp_path / "house.toml").write_text(short_policy_toml("house"), encoding="utf-8")
    registry = PolicyRegistry.with_user_dirs([tmp_path])
    default = registry.load("default")
    choice = PolicySelector(default, registry).choose("D-1", manifest_under("house", "a" * 64), NOW)
    assert choice.policy.name == "house"
    [warning] = choice.problems
    assert warning.kind == "policy_changed" and warning.severity == "warning"
    assert warning.expected == "a" * 64 and warning.found == choice.policy.sha256

    with pytest.raises(ConfigError) as lost:
        PolicySelector(default, SHIPPED).choose("D-1", manifest_under("house", "a" * 64), NOW)
    assert "'house'" in str(lost.value) and "not found" in str(lost.value)
    # Asked for by its file: the same name, so the same policy (its file changed: warned).
    by_file = registry.load(str(tmp_path / "house.toml"))
    choice = PolicySelector(by_file, SHIPPED, explicit=True).choose(
        "D-1", manifest_under("house", "a" * 64), NOW
    )
    assert choice.policy is by_file and choice.change is None and len(choice.problems) == 1
