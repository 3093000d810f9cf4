"""Load the JSON Schemas of ``schemas/`` and turn validation failures into clear problems.

Every problem is an :class:`archiver.errors.ValidationError` whose message starts with the
caller's label and names the JSON path of the field, e.g.::

    followup #3 (id=abc): field 'duration_ms': expected integer or null, got 'x'

Its context has ``field`` and ``severity``: a value outside a documented enum is a
``warning`` (APIs add values over time), everything else an ``error``. How API records are
accepted on top of this lives in :mod:`archiver.getbill.records`.

Values of fields marked ``x-personal-data`` (names, phone numbers, IBAN, free-text notes) or
``x-secret-query`` (signed URLs) are never echoed in messages: only their JSON type is shown.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache, partial
from typing import TYPE_CHECKING, Any

from archiver.common.redact import strip_query
from archiver.data import SCHEMA_DIR
from archiver.errors import ConfigError, ValidationError

if TYPE_CHECKING:  # jsonschema loads on the first validation: the CLI starts without it
    import jsonschema
    from jsonschema import Draft202012Validator

__all__ = ["load_schema", "validate"]

_NAME_RE = re.compile(r"^[a-z0-9_]+$")
_SHOW_MAX = 60


def _file_name(name: str) -> str:
    base = name[: -len(".schema.json")] if name.endswith(".schema.json") else name
    if not _NAME_RE.match(base):
        raise ConfigError(f"invalid schema name {name!r}")
    return f"{base}.schema.json"


@cache
def _load(file_name: str) -> dict[str, Any]:
    path = SCHEMA_DIR / file_name
    try:
        with path.open(encoding="utf-8") as fh:
            schema: dict[str, Any] = json.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"no schema {file_name} in {SCHEMA_DIR}") from None
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema)
    return schema


def load_schema(name: str) -> dict[str, Any]:
    """Return a copy of ``schemas/<name>.schema.json`` (``name`` with or without the suffix)."""
    return copy.deepcopy(_load(_file_name(name)))


@cache
def _validator(file_name: str) -> Draft202012Validator:
    # Compiled once per schema: listings validate thousands of records.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(
        _load(file_name), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def validate(schema_name: str, instance: Any, *, label: str | None = None) -> list[ValidationError]:
    """Validate ``instance`` against a schema of ``schemas/``; one problem per failure.

    Returns an empty list when valid. ``label`` names the thing in messages (default: the schema
    name). Manifest and policy code reuse this.
    """
    file_name = _file_name(schema_name)
    return [
        ValidationError(f"{label or file_name}: {text}", field=field or None, severity=severity)
        for field, text, severity in _describe_all(file_name, instance)
    ]


# --- turning jsonschema errors into messages -------------------------------------------------


@cache
def _quick(file_name: str) -> Any:
    # jsonschema-rs (compiled, tens of times faster) answers "valid?" for the thousands of
    # records a listing brings; only an instance it refuses goes through jsonschema, whose
    # errors the messages below are made of. Formats are checked by jsonschema's own
    # FORMAT_CHECKER (jsonschema-rs alone accepts a leap second or year 0000 that it refuses),
    # so an instance both accept gives no message either way.
    import jsonschema_rs
    from jsonschema import Draft202012Validator

    checker = Draft202012Validator.FORMAT_CHECKER
    formats: dict[str, Callable[..., bool]] = {
        str(name): partial(_conforms, checker, name) for name in checker.checkers
    }
    return jsonschema_rs.Draft202012Validator(
        _load(file_name), formats=formats, validate_formats=True
    )


def _conforms(checker: Any, name: str, value: str) -> bool:
    return bool(checker.conforms(value, name))


def _quickly_valid(file_name: str, instance: Any) -> bool:
    """True when jsonschema-rs finds nothing; anything it cannot read (a lone surrogate, a
    tuple, a key that is not a string) goes to jsonschema, which says what is wrong."""
    try:
        return bool(_quick(file_name).is_valid(instance))
    except (ValueError, TypeError):
        return False


def _json_native(value: Any) -> bool:
    """Only what JSON decodes to (dict with str keys, list, str, int, float, bool, None): the
    types on which jsonschema-rs and jsonschema agree (a tuple is an array to one of them)."""
    if isinstance(value, dict):
        return all(type(k) is str and _json_native(v) for k, v in value.items())
    if type(value) is list:
        return all(_json_native(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def _describe_all(file_name: str, instance: Any) -> list[tuple[str, str, str]]:
    if _json_native(instance) and _quickly_valid(file_name, instance):
        return []
    root = _load(file_name)
    errors = sorted(
        _validator(file_name).iter_errors(instance),
        key=lambda e: ([str(p) for p in e.absolute_path], str(e.validator)),
    )
    out = []
    for error in errors:
        path = list(error.absolute_path)
        if error.validator == "required":
            missing = _missing_property(error)
            if missing is not None:
                path = [*path, missing]
        field = _json_path(path)
        sensitive = _is_sensitive(root, path, error)
        text, severity = _explain(error, sensitive)
        out.append((field, f"field {field!r}: {text}" if field else text, severity))
    return out


def _missing_property(error: jsonschema.ValidationError) -> str | None:
    instance = error.instance if isinstance(error.instance, dict) else {}
    for name in error.validator_value or ():
        if name not in instance and error.message == f"{name!r} is a required property":
            return str(name)
    return None


def _json_path(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _resolve(root: dict[str, Any], schema: Any) -> Any:
    # Only local refs ("#/$defs/x") are used in our schemas.
    seen = 0
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and seen < 10:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            break
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        schema = merged
        seen += 1
    return schema


def _marked(schema: Any) -> bool:
    return isinstance(schema, dict) and bool(
        schema.get("x-personal-data") or schema.get("x-secret-query")
    )


def _is_sensitive(root: dict[str, Any], path: Iterable[Any], error: Any) -> bool:
    if _marked(_resolve(root, error.schema)):
        return True
    schema: Any = _resolve(root, root)
    for part in path:
        if not isinstance(schema, dict):
            return False
        if isinstance(part, int):
            schema = _resolve(root, schema.get("items", {}))
        else:
            schema = _resolve(root, schema.get("properties", {}).get(part, {}))
        if _marked(schema):
            return True
    return False


_JSON_TYPES = {
    type(None): "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _show(value: Any, sensitive: bool) -> str:
    """How a bad value appears in a message: never personal data or a signed query string."""
    if sensitive:
        return f"a value of type {_json_type(value)} (not shown: personal or secret data)"
    if isinstance(value, str) and "?" in value and "://" in value:
        value = strip_query(value)
    if isinstance(value, dict | list):
        # Contents could hold anything (a signed URL, a name): say only what shape it has.
        n = len(value)
        unit = "key" if isinstance(value, dict) else "item"
        return f"{_json_type(value)} of {n} {unit}{'' if n == 1 else 's'}"
    text = repr(value)
    return text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 3] + "..."


def _explain(error: jsonschema.ValidationError, sensitive: bool) -> tuple[str, str]:
    """``(text, severity)`` for one jsonschema error."""
    v, expected, got = error.validator, error.validator_value, _show(error.instance, sensitive)
    if v == "required":
        return "missing (required)", "error"
    if v == "type":
        names = expected if isinstance(expected, list) else [expected]
        return f"expected {' or '.join(map(str, names))}, got {got}", "error"
    if v == "enum":
        values = ", ".join("null" if x is None else str(x) for x in expected)
        # Real APIs add enum values; the record is still evidence, so this is only a warning.
        return f"value {got} is not one of the documented values ({values})", "warning"
    if v == "const":
        return f"expected {json.dumps(expected)}, got {got}", "error"
    if v == "pattern":
        return f"{got} does not match the pattern {expected}", "error"
    if v in ("minLength", "maxLength"):
        return f"{got} is {'shorter' if v == 'minLength' else 'longer'} than {expected}", "error"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{got} violates {v} {expected}", "error"
    if v == "format":
        return f"{got} is not a valid {expected}", "error"
    if v in ("oneOf", "anyOf"):
        return f"{got} matches none of the allowed shapes", "error"
    if v == "additionalProperties" and not sensitive:
        return error.message, "error"
    if sensitive:
        return f"fails the {v!r} check ({got})", "error"
    return error.message, "error"
