"""Schemas load, compile, and give messages naming the record and the field."""

from __future__ import annotations

import pytest

from archiver.common import schemas
from archiver.errors import ConfigError, ValidationError
from archiver.getbill import records


def followup(**fields):
    base = {
        "id": "abc",
        "debt_id": "xyz789ghi012",
        "status": "delivered",
        "type": "call",
        "direction": "outbound",
        "call_date": "2024-01-22T10:30:00+00:00",
        "processed_at": "2024-01-22T10:35:00+00:00",
        "audio_url": "https://s3.amazonaws.com/b/recordings/call_1.mp3?X-Amz-Signature=SECRETSIG",
        "pdf_url": None,
        "duration_ms": 125000,
        "is_retry": False,
        "media_urls_expire_at": "2024-01-22T11:35:00+00:00",
    }
    base.update(fields)
    return base


@pytest.mark.parametrize(
    "name", ["followup", "debt", "list_response", "error", "manifest", "followup.schema.json"]
)
def test_every_schema_loads_and_is_valid_2020_12(name):
    schema = schemas.load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_load_schema_returns_a_copy():
    schemas.load_schema("followup")["required"].append("mutated")
    assert "mutated" not in schemas.load_schema("followup")["required"]


def test_unknown_or_unsafe_schema_name():
    with pytest.raises(ConfigError):
        schemas.load_schema("nope")
    with pytest.raises(ConfigError):
        schemas.load_schema("../etc/passwd")


def test_documented_followup_is_valid():
    assert records.validate_record("followup", followup(), where=0) == []


def test_documented_email_followup_without_optional_fields_is_valid():
    email = {
        "id": "em1",
        "debt_id": "d1",
        "type": "email",
        "status": "sent",
        "direction": None,
        "email_opened": True,
        "email_open_count": 2,
        "email_first_opened_at": "2024-01-23T08:00:00Z",
        "email_clicked": False,
        "email_click_count": 0,
    }
    assert records.validate_record("followup", email, where=1) == []


def test_wrong_type_message_names_record_and_field_and_keeps_record():
    [p] = records.validate_record("followup", followup(duration_ms="x"), where=3)
    assert str(p.message) == (
        "followup #3 (id=abc): field 'duration_ms': expected integer or null, got 'x'"
    )
    assert p.context["field"] == "duration_ms"
    assert p.context["kept"] is True and p.context["severity"] == "error"
    assert p.context["followup_id"] == "abc" and p.context["debt_id"] == "xyz789ghi012"
    assert not records.is_fatal(p)


def test_missing_id_is_fatal():
    record = followup()
    del record["id"]
    [p] = records.validate_record("followup", record, where=7)
    assert p.message == "followup #7: field 'id': missing (required)"
    assert records.is_fatal(p)


def test_missing_debt_id_is_fatal_for_followups():
    record = followup()
    del record["debt_id"]
    problems = records.validate_record("followup", record, where=0)
    assert [p.context["field"] for p in problems] == ["debt_id"]
    assert records.is_fatal(problems[0])


def test_unsafe_id_is_fatal():
    [p] = records.validate_record("followup", followup(id="../x"), where=0)
    assert p.context["field"] == "id" and records.is_fatal(p)
    assert "pattern" in p.message


def test_not_an_object_is_fatal():
    [p] = records.validate_record("followup", ["a"], where=2)
    assert p.message == "followup #2: expected object, got array of 1 item"
    assert records.is_fatal(p)


def test_unknown_status_is_a_warning_and_record_kept():
    [p] = records.validate_record("followup", followup(status="escalated"), where=0)
    assert p.context["severity"] == "warning" and p.context["kept"] is True
    assert "'escalated' is not one of the documented values" in p.message


def test_status_is_case_sensitive():
    [p] = records.validate_record("followup", followup(status="Delivered"), where=0)
    assert p.context["field"] == "status"


def test_unknown_extra_field_is_allowed():
    assert records.validate_record("followup", followup(brand_new_field={"x": 1}), where=0) == []


def test_bad_date_is_reported():
    [p] = records.validate_record("followup", followup(call_date="yesterday"), where=0)
    assert p.context["field"] == "call_date" and "date-time" in p.message


def test_date_times_are_checked_in_every_install():
    """jsonschema checks "date-time" only with rfc3339-validator installed, and skips it
    silently otherwise: the project depends on it itself (the dev tools bring it too, so
    only the dependency list shows what a plain install gets)."""
    from importlib.metadata import requires

    from jsonschema import Draft202012Validator

    assert "date-time" in Draft202012Validator.FORMAT_CHECKER.checkers
    core = [r for r in requires("getbill-archiver") or [] if "extra ==" not in r]
    assert any(r.replace("_", "-").startswith("rfc3339-validator") for r in core), core


def test_naive_date_is_reported():
    [p] = records.validate_record("followup", followup(call_date="2024-01-22T10:30:00"), where=0)
    assert p.context["field"] == "call_date"


def test_personal_data_values_are_never_echoed():
    problems = records.validate_record(
        "debt", {"id": "d1", "iban": ["FR7630006000011234567890189"], "firstname": 42}, where=0
    )
    assert [p.context["field"] for p in problems] == ["firstname", "iban"]
    for p in problems:
        assert "FR76300" not in str(p) and "42" not in p.message
        assert "not shown" in p.message


def test_nested_path_in_message():
    [p] = records.validate_record("debt", {"id": "d1", "contacts": [{}, "bob"]}, where=0)
    assert p.context["field"] == "contacts[1]"
    assert "field 'contacts[1]'" in p.message
    assert "bob" not in p.message


def test_signed_url_query_never_echoed():
    problems = records.validate_record("followup", followup(duration_ms=-1), where=0)
    assert problems and all("SECRETSIG" not in str(p) for p in problems)
    [p] = records.validate_record(
        "followup",
        followup(disconnection_reason=["https://h/x?X-Amz-Signature=SECRETSIG"]),
        where=0,
    )
    assert "SECRETSIG" not in str(p)


def test_debt_requires_only_id_and_allows_custom_status():
    assert records.validate_record("debt", {"id": "d1", "status": "custom.status"}, where=0) == []
    [p] = records.validate_record("debt", {"firstname": "Ann"}, where=0)
    assert records.is_fatal(p) and "Ann" not in str(p)


def test_generic_validate_for_list_and_error_envelopes():
    good = {"error": False, "data": [], "pagination": {"total": 0, "page": 1, "pages": 0}}
    assert schemas.validate("list_response", good) == []
    bad = schemas.validate("list_response", {"data": {}, "pagination": {"page": "1"}}, label="p1")
    assert {p.context["field"] for p in bad} == {"data", "pagination.page"}
    assert all(isinstance(p, ValidationError) and p.message.startswith("p1: ") for p in bad)
    err = {
        "error": True,
        "message": "Rate limit exceeded.",
        "code": 429,
        "details": {"retry_after": 1800, "limit": 1000, "reset_time": "2024-01-15T10:30:00Z"},
    }
    assert schemas.validate("error", err) == []


def test_validators_are_cached():
    assert schemas._validator("followup.schema.json") is schemas._validator("followup.schema.json")


ODD_VALUES = [
    None,
    "",
    "x",
    -1,
    0,
    1.5,
    True,
    [],
    {},
    "2026-13-45T00:00:00Z",
    "2026-01-01T00:00:00",
    "2026-01-01",
    "not a url",
    "http://",
    10**20,
    "ÿ" * 300,
    # jsonschema-rs alone takes the first two for date-times; it cannot read the next two
    "2026-01-01T23:59:60Z",
    "0000-01-01T00:00:00Z",
    "\ud800",
    ("a",),
    {1: "x"},
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_the_quick_check_never_accepts_what_jsonschema_refuses(value):
    """Records are first checked by jsonschema-rs; jsonschema (whose errors make the
    messages) is asked only when that check refuses. So wherever the quick check says valid,
    jsonschema must say valid too: every field of a documented followup and of a debt, set
    to odd values of every JSON type."""
    for name, base in (("followup", followup()), ("debt", {"id": "d1", "status": "open"})):
        file_name = f"{name}.schema.json"
        for field in [*base, "new_field"]:
            instance = {**base, field: value}
            if schemas._json_native(instance) and schemas._quickly_valid(file_name, instance):
                errors = list(schemas._validator(file_name).iter_errors(instance))
                assert errors == [], (name, field, value, errors)
