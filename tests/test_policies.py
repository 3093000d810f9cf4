"""Retention policies: shipped files, validation messages, date maths, the policies CLI."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.cli import main
from archiver.data import SHIPPED_POLICY_DIR
from archiver.errors import ConfigError, PolicyError
from archiver.getbill.records import Followup
from archiver.retention.durations import Duration, add_duration, parse_duration
from archiver.retention.policies import (
    OBJECT_KINDS,
    AnchorDates,
    delete_after,
    last_activity,
    last_activity_of,
    resolve_anchor,
    retain_until,
)
from archiver.retention.policy_files import check_policy_file, load_policy_file
from archiver.retention.registry import PolicyRegistry

REGISTRY = PolicyRegistry()  # the shipped policies

SHIPPED = sorted(SHIPPED_POLICY_DIR.glob("*.toml"))
REQUIRED_NAMES = {
    "default",
    "us-cfpb-reg-f",
    "fr-cnil-call-recording",
    "uk-fca",
    "eu-gdpr-legal-claims",
}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


GOOD = """\
name = "{name}"
title = "Test policy"
jurisdiction = "internal"
notice = "Needs legal review."
mode = "GOVERNANCE"

[[legal_basis]]
citation = "Test 1"
summary = "A test."

[audio]
min = "P6M"
max = "P1Y"
anchor = "call_date"

[pdf]
min = "P3Y"
anchor = "last_activity"

[record]
min = "P3Y"
anchor = "last_activity"

[debt]
min = "P3Y"
anchor = "last_activity"

[manifest]
min = "P3Y"
anchor = "archived_at"

[dossier]
min = "P90D"
anchor = "archived_at"
"""


def write_policy(tmp_path: Path, text: str, name: str = "test-policy") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text.replace("{name}", name), encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    return [str(p) for p in check_policy_file(write_policy(tmp_path, text))]


# --- shipped policies ------------------------------------------------------------------------


def test_required_policies_are_shipped() -> None:
    assert {p.stem for p in SHIPPED} >= REQUIRED_NAMES


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_policy_validates_and_loads(path: Path) -> None:
    assert check_policy_file(path) == []
    policy = REGISTRY.load(path.stem)
    assert policy.name == path.stem
    assert set(policy.rules) == set(OBJECT_KINDS)
    assert policy.legal_basis, "every policy cites its sources"
    assert "legal" in policy.notice.lower() and "review" in policy.notice.lower()
    assert policy.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    for rule in policy.rules.values():
        if rule.max is not None:
            assert add_duration(utc(2024, 2, 29), rule.max) >= add_duration(
                utc(2024, 2, 29), rule.min
            )


def test_default_policy_is_governance_three_years_from_archiving() -> None:
    policy = REGISTRY.load("default")
    assert policy.mode == "GOVERNANCE"
    for rule in policy.rules.values():
        assert (rule.min, rule.anchor, rule.max) == (Duration(years=3), "archived_at", None)


def test_reg_f_encodes_1006_100() -> None:
    policy = REGISTRY.load("us-cfpb-reg-f")
    assert (policy.rules["audio"].min, policy.rules["audio"].anchor) == (
        Duration(years=3),
        "call_date",
    )
    assert policy.rules["record"].anchor == "last_activity"
    assert policy.rules["record"].min == Duration(years=3)
    citations = " ".join(c.citation for c in policy.legal_basis)
    assert "1006.100(a)" in citations and "1006.100(b)" in citations


def test_cnil_caps_recordings_at_six_months_and_analyses_at_one_year() -> None:
    policy = REGISTRY.load("fr-cnil-call-recording")
    assert policy.rules["audio"].max == Duration(months=6)
    assert policy.rules["record"].max == Duration(years=1)
    assert "NS-057" in " ".join(c.citation for c in policy.legal_basis)
    assert "no longer binding" in policy.notice


def test_load_policy_by_path_and_from_user_dir(tmp_path: Path) -> None:
    path = write_policy(tmp_path, GOOD, name="house")
    assert REGISTRY.load(str(path)).name == "house"
    user = PolicyRegistry.with_user_dirs([tmp_path])
    assert user.load("house").source_path == path
    names = [p.name for p in user.policies()]
    assert "house" in names and "default" in names and names == sorted(names)


def test_user_dir_shadows_shipped_policy(tmp_path: Path) -> None:
    write_policy(tmp_path, GOOD, name="default")
    policy = PolicyRegistry.with_user_dirs([tmp_path]).load("default")
    assert policy.source_path.parent == tmp_path
    assert policy.rules["dossier"].min == Duration(days=90)


def test_unknown_policy_name_is_a_config_error_listing_known_names() -> None:
    with pytest.raises(ConfigError) as info:
        REGISTRY.load("nope")
    assert "us-cfpb-reg-f" in str(info.value)


# --- validation: each kind of bad file --------------------------------------------------------


def test_good_file_has_no_problem(tmp_path: Path) -> None:
    assert problems_of(tmp_path, GOOD) == []


@pytest.mark.parametrize(
    "old,new,expected",
    [
        (
            'anchor = "call_date"',
            'anchor = "call_time"',
            "audio.anchor: unknown anchor 'call_time' "
            "(expected one of call_date, last_activity, archived_at)",
        ),
        ('min = "P90D"', 'min = "90 days"', "dossier.min: bad duration '90 days' (expected an ISO"),
        ('min = "P90D"', 'min = "PT1H"', "dossier.min: bad duration 'PT1H': time parts"),
        (
            'max = "P1Y"',
            'max = "P30D"',
            "audio.max: max P30D is shorter than min P6M (expected max >= min",
        ),
        (
            'mode = "GOVERNANCE"',
            'mode = "governance"',
            "mode: bad mode 'governance' (expected one of GOVERNANCE, COMPLIANCE)",
        ),
        (
            'anchor = "archived_at"\n\n[dossier]',
            'anchor = "archived_at"\nretain = "P1Y"\n\n[dossier]',
            "manifest.retain: unknown key 'retain' (expected one of min, max, anchor, note)",
        ),
        ('title = "Test policy"\n', "", "title: missing (expected a non-empty one-line title)"),
        ("[debt]", "[debts]", "debt: missing (expected a table with min, anchor"),
        ('name = "{name}"', 'name = "other"', "name: 'other' differs from the file name"),
        ('summary = "A test."', 'summary = ""', "legal_basis[0].summary: empty"),
        ('title = "Test policy"', "title = 3", "title: an integer where a string is needed"),
    ],
)
def test_each_bad_field_gets_a_clear_message(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    problems = problems_of(tmp_path, GOOD.replace(old, new, 1))
    assert any(expected in p for p in problems), problems
    assert all(p.startswith(str(tmp_path / "test-policy.toml") + ": ") for p in problems)


def test_max_equal_to_min_in_other_units_is_checked_from_every_start_date(tmp_path: Path) -> None:
    # P1M is 28..31 days: P30D is shorter than P1M from January 1st, so it must be refused.
    text = GOOD.replace('min = "P6M"\nmax = "P1Y"', 'min = "P1M"\nmax = "P30D"')
    assert any(
        "audio.max: max P30D is shorter than min P1M" in p for p in problems_of(tmp_path, text)
    )
    text = GOOD.replace('min = "P6M"\nmax = "P1Y"', 'min = "P1M"\nmax = "P31D"')
    assert problems_of(tmp_path, text) == []


def test_bad_toml_reports_the_line(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, GOOD.replace('jurisdiction = "internal"', "jurisdiction = "))
    assert len(problems) == 1
    assert ": line 3: invalid TOML" in problems[0]


def test_every_problem_is_collected(tmp_path: Path) -> None:
    text = (
        GOOD.replace('mode = "GOVERNANCE"', 'mode = "STRICT"')
        .replace('anchor = "call_date"', 'anchor = "call"')
        .replace('min = "P90D"', 'min = "P90X"')
    )
    fields = [p.split(": ")[1] for p in problems_of(tmp_path, text)]
    assert {"mode", "audio.anchor", "dossier.min"} <= set(fields)


def test_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    problems = [str(p) for p in check_policy_file(tmp_path / "absent.toml")]
    assert problems and "cannot read" in problems[0]


def test_load_policy_raises_policy_error_with_file_field_expected(tmp_path: Path) -> None:
    path = write_policy(tmp_path, GOOD.replace('anchor = "call_date"', 'anchor = "when"'))
    with pytest.raises(PolicyError) as info:
        REGISTRY.load(str(path))
    assert info.value.context["file"] == str(path)
    assert info.value.context["field"] == "audio.anchor"
    assert "call_date" in info.value.context["expected"]
    assert "unknown anchor 'when'" in str(info.value)


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,duration,canonical",
    [
        ("P3Y", Duration(years=3), "P3Y"),
        ("P6M", Duration(months=6), "P6M"),
        ("P1Y6M", Duration(years=1, months=6), "P1Y6M"),
        ("P90D", Duration(days=90), "P90D"),
        ("P2W", Duration(days=14), "P14D"),
        ("P0D", Duration(), "P0D"),
    ],
)
def test_parse_duration(text: str, duration: Duration, canonical: str) -> None:
    assert parse_duration(text) == duration
    assert str(duration) == canonical


@pytest.mark.parametrize("text", ["", "P", "3Y", "P1.5Y", "P-1Y", "p3y", "PT1H", "P1D1Y", "P200Y"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    "start,duration,end",
    [
        (utc(2024, 2, 29, 10, 30), "P3Y", utc(2027, 2, 28, 10, 30)),
        (utc(2024, 2, 29), "P4Y", utc(2028, 2, 29)),
        (utc(2024, 2, 29), "P1Y", utc(2025, 2, 28)),
        (utc(2024, 8, 31), "P6M", utc(2025, 2, 28)),
        (utc(2023, 8, 31), "P6M", utc(2024, 2, 29)),
        (utc(2024, 1, 31), "P1M", utc(2024, 2, 29)),
        (utc(2024, 11, 30), "P3M", utc(2025, 2, 28)),
        (utc(2024, 12, 15), "P1M", utc(2025, 1, 15)),
        (utc(2024, 1, 31), "P1Y1M", utc(2025, 2, 28)),
        (utc(2024, 2, 1), "P90D", utc(2024, 5, 1)),  # 2024 is a leap year: 29 + 31 + 30
        (utc(2024, 1, 31), "P1M1D", utc(2024, 3, 1)),  # months first, clamp, then days
    ],
)
def test_add_duration_calendar_semantics(start: datetime, duration: str, end: datetime) -> None:
    assert add_duration(start, parse_duration(duration)) == end


# --- retention dates --------------------------------------------------------------------------

CALL = utc(2024, 2, 29, 9, 0)
LAST = utc(2024, 6, 15, 12, 0)
ARCHIVED = utc(2024, 7, 1, 8, 0)


@pytest.mark.parametrize(
    "kind,expected",
    [
        ("audio", utc(2024, 8, 29, 9, 0)),  # P6M from call_date
        ("record", utc(2027, 6, 15, 12, 0)),  # P3Y from last_activity
        ("manifest", utc(2027, 7, 1, 8, 0)),  # P3Y from archived_at
        ("dossier", ARCHIVED + timedelta(days=90)),
    ],
)
def test_retain_until_with_each_anchor(tmp_path: Path, kind: str, expected: datetime) -> None:
    policy = load_policy_file(str(write_policy(tmp_path, GOOD)))
    dates = AnchorDates(archived_at=ARCHIVED, call_date=CALL, last_activity=LAST)
    assert retain_until(policy, kind, dates) == expected  # type: ignore[arg-type]


def test_missing_anchor_falls_back_to_the_latest_known_date(tmp_path: Path) -> None:
    policy = load_policy_file(str(write_policy(tmp_path, GOOD)))
    # An email: no call_date. Latest known is archived_at.
    email = AnchorDates(archived_at=ARCHIVED, last_activity=LAST)
    assert retain_until(policy, "audio", email) == utc(2025, 1, 1, 8, 0)
    resolved = resolve_anchor("call_date", email)
    assert resolved.is_fallback and resolved.used == "archived_at"
    # No followups yet: no last_activity; the call date is later than archiving here (clock
    # skew or a re-archive) so the later one wins.
    skewed = AnchorDates(archived_at=ARCHIVED, call_date=utc(2024, 7, 2))
    assert retain_until(policy, "record", skewed) == utc(2027, 7, 2)
    assert not resolve_anchor("archived_at", skewed).is_fallback


def test_anchor_dates_are_normalised_to_utc_and_must_be_aware() -> None:
    paris = timezone(timedelta(hours=2))
    dates = AnchorDates(archived_at=datetime(2024, 7, 1, 10, 0, tzinfo=paris))
    assert dates.archived_at == ARCHIVED and dates.archived_at.tzinfo == UTC
    with pytest.raises(ValueError):
        AnchorDates(archived_at=datetime(2024, 7, 1))


def test_new_followup_moves_last_activity_and_record_retention_forward() -> None:
    policy = REGISTRY.load("us-cfpb-reg-f")
    followups = [utc(2024, 1, 10), None, utc(2024, 3, 5)]
    before = last_activity(followups)
    assert before == utc(2024, 3, 5)
    after = last_activity([*followups, utc(2025, 1, 20)])
    assert after == utc(2025, 1, 20)
    until_before = retain_until(policy, "record", AnchorDates(ARCHIVED, last_activity=before))
    until_after = retain_until(policy, "record", AnchorDates(ARCHIVED, last_activity=after))
    assert until_before == utc(2027, 3, 5)
    assert until_after == utc(2028, 1, 20)
    assert until_after > until_before


def test_record_retention_counts_from_last_activity_not_archiving() -> None:
    policy = REGISTRY.load("us-cfpb-reg-f")
    dates = AnchorDates(archived_at=ARCHIVED, last_activity=utc(2024, 3, 5))
    assert retain_until(policy, "record", dates) == utc(2027, 3, 5)


def test_last_activity_of_followups_uses_call_date_and_processed_at() -> None:
    def followup(fid: str, **dates: str | None) -> Followup:
        return Followup.from_record({"id": fid, "debt_id": "d1", **dates})

    followups = [
        followup("f1", call_date="2024-01-22T10:30:00+00:00", processed_at=None),
        followup("f2", call_date=None, processed_at="2024-02-01T08:00:00+01:00"),
        followup("f3", scheduled_at="2030-01-01T00:00:00+00:00"),
    ]
    assert last_activity_of(followups) == utc(2024, 2, 1, 7, 0)
    assert last_activity([]) is None
    assert last_activity([None]) is None


def test_delete_after_cnil_is_six_months_after_the_call() -> None:
    policy = REGISTRY.load("fr-cnil-call-recording")
    dates = AnchorDates(archived_at=utc(2024, 9, 1), call_date=utc(2024, 8, 31, 14, 0))
    assert delete_after(policy, "audio", dates) == utc(2025, 2, 28, 14, 0)
    assert retain_until(policy, "audio", dates) <= delete_after(policy, "audio", dates)  # type: ignore[operator]
    assert delete_after(policy, "manifest", dates) is None
    assert delete_after(REGISTRY.load("us-cfpb-reg-f"), "audio", dates) is None


# --- CLI --------------------------------------------------------------------------------------


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("ARCHIVER_POLICY_DIR", raising=False)
    return CliRunner()


def test_cli_list(runner: CliRunner) -> None:
    result = runner.invoke(main, ["policies", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == sorted(line.split()[0] for line in lines)
    assert any(line.split()[:3] == ["us-cfpb-reg-f", "US", "COMPLIANCE"] for line in lines)


def test_cli_list_json_includes_user_dir(runner: CliRunner, tmp_path: Path) -> None:
    write_policy(tmp_path, GOOD, name="house")
    result = runner.invoke(
        main, ["policies", "list", "--json"], env={"ARCHIVER_POLICY_DIR": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    by_name = {r["name"]: r for r in rows}
    assert REQUIRED_NAMES | {"house"} <= set(by_name)
    assert by_name["house"]["mode"] == "GOVERNANCE"
    assert set(by_name["uk-fca"]) >= {"name", "title", "jurisdiction", "mode"}


def test_cli_show_text(runner: CliRunner) -> None:
    result = runner.invoke(main, ["policies", "show", "fr-cnil-call-recording"])
    assert result.exit_code == 0, result.output
    out = result.output
    audio = next(line for line in out.splitlines() if line.startswith("audio "))
    assert audio.split()[:4] == ["audio", "P6M", "P6M", "call_date"]
    assert "NS-057" in out and "NOTICE:" in out and "legal basis:" in out


def test_cli_show_json(runner: CliRunner) -> None:
    result = runner.invoke(main, ["policies", "show", "us-cfpb-reg-f", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["rules"]["audio"] == {"min": "P3Y", "anchor": "call_date", "max": None,
                                      "note": data["rules"]["audio"]["note"]}  # fmt: skip
    assert set(data["rules"]) == set(OBJECT_KINDS)
    assert any(c["citation"] == "12 CFR 1006.100(b)" for c in data["legal_basis"])
    assert len(data["sha256"]) == 64


def test_cli_show_unknown_name_exits_2(runner: CliRunner) -> None:
    result = runner.invoke(main, ["policies", "show", "nope"])
    assert result.exit_code == 2
    assert "unknown retention policy 'nope'" in result.output


def test_cli_show_invalid_file_is_a_configuration_error(runner: CliRunner, tmp_path: Path) -> None:
    path = write_policy(tmp_path, GOOD.replace('mode = "GOVERNANCE"', 'mode = "X"'))
    result = runner.invoke(main, ["policies", "show", str(path)])
    assert result.exit_code == 2
    assert "bad mode 'X'" in result.output and str(path) in result.output


def test_cli_check_valid_files_exit_0(runner: CliRunner) -> None:
    result = runner.invoke(main, ["policies", "check", *map(str, SHIPPED)])
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok") == len(SHIPPED)


def test_cli_check_lists_every_problem_and_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    good = write_policy(tmp_path, GOOD, name="good")
    bad = write_policy(
        tmp_path,
        GOOD.replace('anchor = "call_date"', 'anchor = "x"').replace('max = "P1Y"', 'max = "P1M"'),
        name="bad",
    )
    result = runner.invoke(main, ["policies", "check", str(good), str(bad)])
    assert result.exit_code == 1
    assert f"{good}: ok" in result.output
    assert f"{bad}: audio.anchor: unknown anchor 'x' (expected one of" in result.output
    assert f"{bad}: audio.max: max P1M is shorter than min P6M" in result.output


def test_cli_check_json(runner: CliRunner, tmp_path: Path) -> None:
    bad = write_policy(tmp_path, "name = 'bad'\n", name="bad")
    result = runner.invoke(main, ["policies", "check", "--json", str(bad)])
    assert result.exit_code == 1
    row = json.loads(result.output)
    assert row["valid"] is False
    assert {p["field"] for p in row["problems"]} >= {"mode", "audio", "legal_basis"}
