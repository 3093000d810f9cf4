"""Typed records keep the raw record; stored records lose signed query strings (pure)."""

from __future__ import annotations

import pytest

from archiver.common.redact import strip_signed_urls
from archiver.errors import UnsafeIdError, ValidationError
from archiver.getbill.records import Debt, Followup

SIGNED = "https://s3.amazonaws.com/bkt/recordings/call_1.mp3?X-Amz-Signature=SECRETSIG&X-Amz-Expires=3600"


def followup(**extra: object) -> Followup:
    raw = {
        "id": "f1",
        "debt_id": "d1",
        "type": "call",
        "status": "deal_found",
        "call_date": "2024-01-22T10:30:00+00:00",
        "audio_url": SIGNED,
        "pdf_url": None,
        "media_urls_expire_at": "2024-01-22T11:30:00+00:00",
        **extra,
    }
    return Followup.from_record(raw)


def test_sanitized_record_strips_signed_urls_everywhere_and_volatile_fields() -> None:
    f = followup(
        recording_url=SIGNED,
        nested={"links": [SIGNED, "https://example.com/plain?page=2"]},
    )
    out = f.sanitized_record()
    assert out["audio_url"] == "https://s3.amazonaws.com/bkt/recordings/call_1.mp3"
    assert out["recording_url"] == out["audio_url"]
    assert out["nested"]["links"][0] == out["audio_url"]
    assert out["nested"]["links"][1] == "https://example.com/plain?page=2"  # not a signed link
    assert "media_urls_expire_at" not in out
    assert "SECRETSIG" not in repr(out)
    assert f.raw["audio_url"] == SIGNED  # the typed view keeps the record as received


def test_media_refs_hide_the_signed_url() -> None:
    (ref,) = followup().media()
    assert ref.kind == "audio" and ref.source.endswith("call_1.mp3")
    assert "SECRETSIG" not in repr(ref)
    assert ref.expires_at is not None


def test_bad_records_name_the_field() -> None:
    with pytest.raises(UnsafeIdError):
        Followup.from_record({"id": "../x", "debt_id": "d1"})
    with pytest.raises(ValidationError) as caught:
        followup(call_date="yesterday")
    assert caught.value.context["field"] == "call_date"


def test_debt_record_loses_signed_payment_link_and_credentials() -> None:
    debt = Debt.from_record(
        {"id": "d1", "payment_link": SIGNED, "site": "https://user:pw@getbill.io/x?sig=1"}
    )
    out = debt.sanitized_record()
    assert "SECRETSIG" not in str(out) and "pw@" not in str(out)
    assert strip_signed_urls(5) == 5
