"""Policy files: reading, validating and building a :class:`RetentionPolicy` from TOML.

Every problem of a file is reported with its field and what is expected there
(:class:`PolicyProblem`), never only the first: the schema
(``schemas/retention_policy.schema.json``) says what it can, then what it cannot (durations
parse, ``max >= min`` from every start date, the name matches the file name).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archiver.data import SCHEMA_DIR
from archiver.errors import ConfigError, PolicyError
from archiver.retention.durations import (
    DURATION_EXPECTED,
    DURATION_RE,
    Duration,
    never_shorter,
    parse_duration,
)
from archiver.retention.policies import (
    OBJECT_KINDS,
    Citation,
    KindRule,
    ObjectKind,
    RetentionPolicy,
)

__all__ = ["SCHEMA_PATH", "PolicyProblem", "check_policy_file", "load_policy_file"]

SCHEMA_PATH = SCHEMA_DIR / "retention_policy.schema.json"


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


if TYPE_CHECKING:  # jsonschema loads with the first policy file read, not at CLI start-up
    import jsonschema

_validator: jsonschema.protocols.Validator | None = None


def _schema_validator() -> jsonschema.protocols.Validator:
    global _validator
    if _validator is None:
        schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
        import jsonschema

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
            if not isinstance(text, str) or not DURATION_RE.fullmatch(text):
                continue  # absent or already reported by the schema
            try:
                parsed[bound] = parse_duration(text)
            except ValueError as exc:
                problems.append(PolicyProblem(file, f"{kind}.{bound}", str(exc), DURATION_EXPECTED))
        if "min" in parsed and "max" in parsed and not never_shorter(parsed["max"], parsed["min"]):
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


def load_policy_file(path: str | Path) -> RetentionPolicy:
    """Load and validate one policy file.

    Raises :class:`ConfigError` when the file does not exist and :class:`PolicyError` (file,
    field, expected) when it is invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("retention policy file not found", file=str(path))
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
