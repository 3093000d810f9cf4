"""Retention policies: loading, validation and retention date maths. Pure, no S3.

A policy (``retention_policies/{name}.toml``, validated against
``schemas/retention_policy.schema.json``) gives, for each kind of archived object, a
**minimum** retention that S3 Object Lock enforces and an optional **maximum** after which the
purge step deletes the object (unless a legal hold is on).

Decisions, written down so a compliance officer can check them:

* **One anchor per kind.** ``min`` and ``max`` both count from the kind's ``anchor``. The
  sources give both limits from the same event (the call, the last collection activity), and a
  shared anchor makes ``min <= max`` checkable once, in the file, for every object.
* **Calendar durations.** ``P1Y``/``P6M`` add calendar years/months, clamping to the end of the
  month (2024-02-29 + P1Y = 2025-02-28, 2024-08-31 + P6M = 2025-02-28); then days (and weeks,
  as 7 days) are added as 24-hour days. Time of day is kept.
* **Missing anchor date.** An email has no ``call_date``; a debt may have no followup yet. Then
  the anchor is the *latest* known date among call_date, last_activity and archived_at
  (archived_at is always known). Later is the conservative choice for an evidence archive: the
  object is never released or purged earlier than with the true anchor, which must lie before
  archiving. :func:`resolve_anchor` says which date was used, for the audit trail.
* **last_activity** of a debt is the latest ``call_date`` or ``processed_at`` of its followups:
  both mark a contact attempt or a letter actually sent. ``scheduled_at`` is left out: a planned
  action is not an activity until it happens. For a manifest (one per debt and run), it is the
  debt's last activity at that run; later runs extend earlier retention dates.
* **Past max** means strictly after :func:`delete_after`.

Every datetime is timezone-aware; results are in UTC.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import jsonschema

from archiver.data import SCHEMA_DIR, SHIPPED_POLICY_DIR
from archiver.errors import ConfigError, PolicyError

if TYPE_CHECKING:
    from archiver.getbill.records import Followup

__all__ = [
    "ANCHORS",
    "DEFAULT_POLICY",
    "OBJECT_KINDS",
    "SCHEMA_PATH",
    "SHIPPED_POLICY_DIR",
    "Anchor",
    "AnchorDates",
    "Citation",
    "Duration",
    "KindRule",
    "Mode",
    "ObjectKind",
    "PolicyProblem",
    "ResolvedAnchor",
    "RetentionPolicy",
    "add_duration",
    "check_policy_file",
    "delete_after",
    "is_past_max",
    "last_activity",
    "last_activity_of",
    "list_policies",
    "load_policy",
    "parse_duration",
    "resolve_anchor",
    "retain_until",
]

ObjectKind = Literal["audio", "pdf", "record", "debt", "manifest", "dossier"]
Anchor = Literal["call_date", "last_activity", "archived_at"]
Mode = Literal["GOVERNANCE", "COMPLIANCE"]
OBJECT_KINDS: tuple[ObjectKind, ...] = get_args(ObjectKind)
ANCHORS: tuple[Anchor, ...] = get_args(Anchor)

SCHEMA_PATH = SCHEMA_DIR / "retention_policy.schema.json"
DEFAULT_POLICY = "default"

# ---------------------------------------------------------------------------------------------
# Durations


_DURATION_RE = re.compile(r"P(?=\d)(?:(\d{1,4})Y)?(?:(\d{1,4})M)?(?:(\d{1,4})W)?(?:(\d{1,5})D)?")
_DURATION_EXPECTED = (
    "an ISO 8601 duration of years, months, weeks or days such as P3Y, P6M, P1Y6M, P90D"
)
# A bound keeps date maths far from datetime's year 9999 limit; no record rule comes close.
_MAX_YEARS = 100


@dataclass(frozen=True)
class Duration:
    """A calendar duration: years and months (end-of-month clamped), then days."""

    years: int = 0
    months: int = 0
    days: int = 0

    def __post_init__(self) -> None:
        if min(self.years, self.months, self.days) < 0:
            raise ValueError("duration components must not be negative")

    def __str__(self) -> str:
        parts = [(self.years, "Y"), (self.months, "M"), (self.days, "D")]
        text = "".join(f"{n}{unit}" for n, unit in parts if n)
        return f"P{text or '0D'}"

    @property
    def is_zero(self) -> bool:
        return not (self.years or self.months or self.days)


def parse_duration(text: str) -> Duration:
    """Parse ``P3Y``, ``P6M``, ``P1Y6M``, ``P2W``, ``P90D`` (weeks become 7 days).

    Raises :class:`ValueError` saying what is expected: time parts (``PT1H``), fractions,
    signs, lowercase and durations over 100 years are refused.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected {_DURATION_EXPECTED}, got {type(text).__name__}")
    if "T" in text:
        raise ValueError(
            f"{text!r} has a time part; only years, months, weeks and days are allowed"
        )
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not {_DURATION_EXPECTED}")
    years, months, weeks, days = (int(g) if g else 0 for g in match.groups())
    duration = Duration(years=years, months=months, days=weeks * 7 + days)
    if years + months / 12 + duration.days / 365 > _MAX_YEARS:
        raise ValueError(f"{text!r} is longer than {_MAX_YEARS} years")
    return duration


def add_duration(when: datetime, duration: Duration) -> datetime:
    """``when + duration`` with calendar semantics (see the module docstring)."""
    month_index = when.month - 1 + duration.months + 12 * duration.years
    year, month = when.year + month_index // 12, month_index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day) + timedelta(days=duration.days)


# Every day of a whole leap cycle: comparing two calendar durations depends on the start date
# (P1M vs P30D), so "max >= min" must hold from every start date; four years cover every
# month length and leap position.
_REFERENCE_DAYS = [
    datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=i)
    for i in range((date(2028, 1, 1) - date(2024, 1, 1)).days)
]


def _never_shorter(longer: Duration, shorter: Duration) -> bool:
    # Fast path: more months (in total) and more days is longer from any start date.
    months = (longer.years - shorter.years) * 12 + longer.months - shorter.months
    if months >= 0 and longer.days >= shorter.days:
        return True
    return all(add_duration(d, longer) >= add_duration(d, shorter) for d in _REFERENCE_DAYS)


# ---------------------------------------------------------------------------------------------
# Policies


@dataclass(frozen=True)
class KindRule:
    """Retention of one kind of object: keep ``min`` from ``anchor``; delete after ``max``."""

    min: Duration
    anchor: Anchor
    max: Duration | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "min": str(self.min),
            "anchor": self.anchor,
            "max": str(self.max) if self.max else None,
            "note": self.note,
        }


@dataclass(frozen=True)
class Citation:
    """One legal source of a policy."""

    citation: str
    summary: str
    url: str | None = None


@dataclass(frozen=True)
class RetentionPolicy:
    """A loaded, validated policy. ``sha256`` is of the file's bytes, for the manifest."""

    name: str
    title: str
    jurisdiction: str
    legal_basis: tuple[Citation, ...]
    mode: Mode
    rules: dict[ObjectKind, KindRule]
    sha256: str
    source_path: Path
    notice: str = ""
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description (used by ``archiver policies show --json``)."""
        return {
            "name": self.name,
            "title": self.title,
            "jurisdiction": self.jurisdiction,
            "mode": self.mode,
            "notice": self.notice,
            "description": self.description,
            "legal_basis": [
                {"citation": c.citation, "summary": c.summary, "url": c.url}
                for c in self.legal_basis
            ],
            "rules": {kind: rule.to_dict() for kind, rule in self.rules.items()},
            "sha256": self.sha256,
            "source_path": str(self.source_path),
        }

    def manifest_ref(self) -> dict[str, str]:
        """What a manifest records about the policy it applied (see manifest.schema.json)."""
        return {"name": self.name, "title": self.title, "sha256": self.sha256, "mode": self.mode}


@dataclass(frozen=True)
class PolicyProblem:
    """One thing wrong with a policy file."""

    file: str
    field: str
    problem: str
    expected: str | None = None

    def __str__(self) -> str:
        tail = f" (expected {self.expected})" if self.expected else ""
        return f"{self.file}: {self.field}: {self.problem}{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "field": self.field,
            "problem": self.problem,
            "expected": self.expected,
        }


_validator: jsonschema.protocols.Validator | None = None


def _schema_validator() -> jsonschema.protocols.Validator:
    global _validator
    if _validator is None:
        schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        _validator = cls(schema)
    return _validator


def _field_name(path: Iterable[Any]) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else str(p) for p in path]
    return ".".join(parts).replace(".[", "[") or "(top level)"


def _schema_problems(file: str, data: dict[str, Any]) -> list[PolicyProblem]:
    """Translate jsonschema errors into problems with a field and an 'expected' text."""
    problems: list[PolicyProblem] = []
    errors = sorted(
        _schema_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]
    )
    for err in errors:
        path = list(err.absolute_path)
        expected = err.schema.get("description") if isinstance(err.schema, dict) else None
        instance = err.instance
        if err.validator == "required":
            # One error per missing property; the schema 'description' of that property says
            # what belongs there.
            props = err.schema.get("properties", {})
            for name in err.validator_value:
                if isinstance(instance, dict) and name not in instance:
                    sub = props.get(name, {})
                    want = sub.get("description")
                    if "$ref" in sub:
                        want = "a table with min, anchor and optional max and note"
                    problems.append(
                        PolicyProblem(file, _field_name([*path, name]), "missing", want)
                    )
            continue
        if err.validator == "additionalProperties" and isinstance(instance, dict):
            allowed = list(err.schema.get("properties", {}))
            for key in instance:
                if key not in allowed:
                    problems.append(
                        PolicyProblem(
                            file,
                            _field_name([*path, key]),
                            f"unknown key {key!r}",
                            "one of " + ", ".join(allowed),
                        )
                    )
            continue
        last = str(path[-1]) if path else ""
        if err.validator == "enum":
            what = {"anchor": "unknown anchor", "mode": "bad mode"}.get(last, "value not allowed")
            problem = f"{what} {instance!r}"
        elif err.validator == "pattern" and last in ("min", "max"):
            problem = f"bad duration {instance!r}"
            if isinstance(instance, str) and "T" in instance:
                problem += ": time parts are not allowed"
        elif err.validator == "pattern":
            problem = f"bad value {instance!r}"
        elif err.validator == "type":
            got = _PY_TO_TOML.get(type(instance).__name__, type(instance).__name__)
            problem = f"{_a(got)} where {_a(_toml_type(err.validator_value))} is needed"
        elif err.validator in ("minLength", "minItems"):
            problem = "empty"
        else:
            problem = err.message
        problems.append(PolicyProblem(file, _field_name(path), problem, expected))
    # jsonschema reports a 'required' failure once per missing key, each seeing all of them.
    return list(dict.fromkeys(problems))


_PY_TO_TOML = {
    "dict": "table",
    "list": "array",
    "str": "string",
    "int": "integer",
    "bool": "boolean",
}


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def _toml_type(json_type: Any) -> str:
    names = {"object": "table", "array": "array", "string": "string", "integer": "integer"}
    if isinstance(json_type, list):
        return " or ".join(names.get(t, str(t)) for t in json_type)
    return names.get(json_type, str(json_type))


def _read(path: Path) -> tuple[bytes | None, dict[str, Any] | None, list[PolicyProblem]]:
    """Cheap checks first: the file can be read, then parsed as TOML."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, None, [PolicyProblem(file, "(file)", f"cannot read: {exc.strerror}")]
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return raw, None, [PolicyProblem(file, "(file)", "not UTF-8 text", "a UTF-8 TOML file")]
    except tomllib.TOMLDecodeError as exc:
        # tomllib puts "(at line L, column C)" in the message; lift the line into the field.
        msg = str(exc)
        where = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        fld = f"line {where.group(1)}" if where else "(toml)"
        return raw, None, [PolicyProblem(file, fld, f"invalid TOML: {msg}", "valid TOML 1.0")]
    return raw, data, []


def _semantic_problems(path: Path, data: dict[str, Any]) -> list[PolicyProblem]:
    """What the schema cannot say: durations parse, max >= min, name matches the file."""
    file = str(path)
    problems: list[PolicyProblem] = []
    name = data.get("name")
    if isinstance(name, str) and path.suffix == ".toml" and name != path.stem:
        problems.append(
            PolicyProblem(
                file,
                "name",
                f"{name!r} differs from the file name",
                f"the file name {path.stem!r}, by which the policy is loaded",
            )
        )
    for kind in OBJECT_KINDS:
        table = data.get(kind)
        if not isinstance(table, dict):
            continue
        parsed: dict[str, Duration] = {}
        for bound in ("min", "max"):
            text = table.get(bound)
            if not isinstance(text, str) or not _DURATION_RE.fullmatch(text):
                continue  # absent or already reported by the schema
            try:
                parsed[bound] = parse_duration(text)
            except ValueError as exc:
                problems.append(
                    PolicyProblem(file, f"{kind}.{bound}", str(exc), _DURATION_EXPECTED)
                )
        if "min" in parsed and "max" in parsed and not _never_shorter(parsed["max"], parsed["min"]):
            problems.append(
                PolicyProblem(
                    file,
                    f"{kind}.max",
                    f"max {parsed['max']} is shorter than min {parsed['min']}",
                    "max >= min from every start date",
                )
            )
    return problems


def check_policy_file(path: str | Path) -> list[PolicyProblem]:
    """Every problem of one policy file (empty list: valid). Never raises for a bad file."""
    path = Path(path)
    _, data, problems = _read(path)
    if data is None:
        return problems
    return _schema_problems(str(path), data) + _semantic_problems(path, data)


def _build(path: Path, raw: bytes, data: dict[str, Any]) -> RetentionPolicy:
    rules: dict[ObjectKind, KindRule] = {}
    for kind in OBJECT_KINDS:
        table = data[kind]
        rules[kind] = KindRule(
            min=parse_duration(table["min"]),
            anchor=table["anchor"],
            max=parse_duration(table["max"]) if "max" in table else None,
            note=table.get("note"),
        )
    return RetentionPolicy(
        name=data["name"],
        title=data["title"],
        jurisdiction=data["jurisdiction"],
        legal_basis=tuple(
            Citation(c["citation"], c["summary"], c.get("url")) for c in data["legal_basis"]
        ),
        mode=data["mode"],
        rules=rules,
        sha256=hashlib.sha256(raw).hexdigest(),
        source_path=path,
        notice=data["notice"],
        description=data.get("description"),
    )


def _load_file(path: Path) -> RetentionPolicy:
    raw, data, problems = _read(path)
    if data is not None:
        problems = _schema_problems(str(path), data) + _semantic_problems(path, data)
    if problems or raw is None or data is None:
        first = problems[0]
        detail = "; ".join(f"{p.field}: {p.problem}" for p in problems)
        raise PolicyError(
            f"invalid retention policy ({len(problems)} problem(s)): {detail}",
            file=str(path),
            field=first.field,
            expected=first.expected,
        )
    return _build(path, raw, data)


def _dirs(search_dirs: Sequence[str | Path] | None) -> list[Path]:
    return [Path(d) for d in search_dirs] if search_dirs is not None else [SHIPPED_POLICY_DIR]


def _looks_like_path(name_or_path: str) -> bool:
    return name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path


def load_policy(
    name_or_path: str | Path, *, search_dirs: Sequence[str | Path] | None = None
) -> RetentionPolicy:
    """Load a policy by name (``{name}.toml`` in the first of ``search_dirs`` that has it;
    default: the shipped policies) or from a path to a ``.toml`` file.

    Raises :class:`ConfigError` for an unknown name or missing file and :class:`PolicyError`
    (file, field, expected) for an invalid one.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or _looks_like_path(text):
        path = Path(text)
        if not path.is_file():
            raise ConfigError("retention policy file not found", file=text)
        return _load_file(path)
    dirs = _dirs(search_dirs)
    for directory in dirs:
        candidate = directory / f"{text}.toml"
        if candidate.is_file():
            return _load_file(candidate)
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.toml")})
    raise ConfigError(
        f"unknown retention policy {text!r}",
        expected="one of " + ", ".join(known) if known else "a policy file",
        searched=", ".join(str(d) for d in dirs),
    )


def list_policies(search_dirs: Sequence[str | Path] | None = None) -> list[RetentionPolicy]:
    """Every policy in ``search_dirs``, sorted by name; an earlier directory shadows a later
    one with the same name. Raises :class:`PolicyError` on the first invalid file."""
    found: dict[str, RetentionPolicy] = {}
    for directory in _dirs(search_dirs):
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            if path.stem not in found:
                found[path.stem] = _load_file(path)
    return [found[name] for name in sorted(found)]


# ---------------------------------------------------------------------------------------------
# Retention dates


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value.isoformat()}")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class AnchorDates:
    """The dates an object's retention can count from. Stored in UTC."""

    archived_at: datetime
    call_date: datetime | None = None
    last_activity: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("archived_at", "call_date", "last_activity"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _utc(value, name))


@dataclass(frozen=True)
class ResolvedAnchor:
    """The anchor date actually used, and whether it stands in for a missing one."""

    anchor: Anchor
    used: Anchor
    date: datetime

    @property
    def is_fallback(self) -> bool:
        return self.used != self.anchor


def resolve_anchor(anchor: Anchor, dates: AnchorDates) -> ResolvedAnchor:
    """The date ``anchor`` stands for; if unknown, the latest known date (conservative)."""
    value = getattr(dates, anchor)
    if value is not None:
        return ResolvedAnchor(anchor, anchor, value)
    known = [(getattr(dates, a), a) for a in ANCHORS if getattr(dates, a) is not None]
    latest, used = max(known, key=lambda pair: pair[0])
    return ResolvedAnchor(anchor, used, latest)


def retain_until(policy: RetentionPolicy, kind: ObjectKind, dates: AnchorDates) -> datetime:
    """End of the minimum retention of an object of ``kind`` (the Object Lock date), UTC."""
    rule = policy.rules[kind]
    return add_duration(resolve_anchor(rule.anchor, dates).date, rule.min)


def delete_after(policy: RetentionPolicy, kind: ObjectKind, dates: AnchorDates) -> datetime | None:
    """End of the maximum retention (after it the purge step deletes), or None if no max."""
    rule = policy.rules[kind]
    if rule.max is None:
        return None
    return add_duration(resolve_anchor(rule.anchor, dates).date, rule.max)


def is_past_max(
    policy: RetentionPolicy, kind: ObjectKind, dates: AnchorDates, now: datetime
) -> bool:
    """True when ``now`` is strictly after :func:`delete_after` (never when there is no max).
    A legal hold is the caller's business: it overrides this answer."""
    limit = delete_after(policy, kind, dates)
    return limit is not None and _utc(now, "now") > limit


def last_activity(followup_dates: Iterable[datetime | None]) -> datetime | None:
    """The latest of the given dates (Nones skipped) in UTC, or None if there is none.

    Feed it the ``call_date`` and ``processed_at`` of every followup of a debt
    (:func:`last_activity_of` does so).
    """
    dates = [_utc(d, "activity date") for d in followup_dates if d is not None]
    return max(dates, default=None)


def last_activity_of(followups: Iterable[Followup]) -> datetime | None:
    """Last collection activity of a debt: latest ``call_date`` / ``processed_at`` of its
    followups (``scheduled_at`` is a plan, not an activity)."""
    return last_activity(d for f in followups for d in (f.call_date, f.processed_at))
