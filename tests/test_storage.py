"""The WORM object store against a real SeaweedFS over HTTP (Object Lock enforced by the server)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from fixtures_s3 import unique_bucket_name

from archiver.cli import main
from archiver.errors import (
    BucketNotLockedError,
    ConfigError,
    ObjectConflictError,
    RetentionError,
    StorageError,
)
from archiver.store.objects import ObjectStore
from archiver.store.settings import StorageSettings, make_s3_client
from archiver.store.types import Lock

MiB = 1024 * 1024


def _lock(mode: str = "COMPLIANCE", days: float = 1, hold: bool = False) -> Lock:
    until = datetime.now(UTC) + timedelta(days=days)
    return Lock(mode, until, legal_hold=hold)  # type: ignore[arg-type]


def _versions(store: ObjectStore, key: str) -> list[Any]:
    return [v for v in store.list_versions(key) if v.key == key]


# -- pure checks (no server) ----------------------------------------------------------------


def test_lock_needs_an_aware_date_and_normalises_to_utc() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Lock("COMPLIANCE", datetime(2030, 1, 1))
    paris = datetime(2030, 1, 1, 12, tzinfo=__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert Lock("GOVERNANCE", paris).retain_until == datetime(2030, 1, 1, 11, tzinfo=UTC)
    with pytest.raises(ValueError, match="mode"):
        Lock("FOREVER", paris)  # type: ignore[arg-type]
    # S3 keeps whole seconds: round up, never down (that would shorten the lock).
    fraction = datetime(2030, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert Lock("GOVERNANCE", fraction).retain_until == datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC)


def test_settings_refuse_parts_below_the_s3_minimum() -> None:
    with pytest.raises(ValueError, match="5 MiB"):
        StorageSettings(part_size=1 * MiB)


# -- bucket -----------------------------------------------------------------------------------


@pytest.mark.integration
def test_create_bucket_enables_object_lock_and_versioning(s3_client: Any) -> None:
    store = ObjectStore(s3_client, unique_bucket_name())
    store.create_bucket()
    assert s3_client.get_bucket_versioning(Bucket=store.bucket)["Status"] == "Enabled"
    conf = s3_client.get_object_lock_configuration(Bucket=store.bucket)
    assert conf["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    assert store.default_retention() is None
    store.check_bucket()

    # Idempotent; the default retention changes only when asked.
    store.create_bucket(mode="COMPLIANCE", days=30)
    assert store.default_retention() == ("COMPLIANCE", 30)
    store.create_bucket()
    assert store.default_retention() == ("COMPLIANCE", 30)

    with pytest.raises(ConfigError, match="both"):
        store.create_bucket(mode="GOVERNANCE")


@pytest.mark.integration
def test_plain_bucket_is_refused(s3_client: Any) -> None:
    name = unique_bucket_name("plain")
    s3_client.create_bucket(Bucket=name)
    store = ObjectStore(s3_client, name)
    with pytest.raises(BucketNotLockedError, match="no Object Lock") as info:
        store.create_bucket(mode="COMPLIANCE", days=1)
    assert "archiver init-bucket" in str(info.value)
    with pytest.raises(BucketNotLockedError):
        store.check_bucket()


@pytest.mark.integration
def test_missing_bucket_points_at_init_bucket(s3_client: Any) -> None:
    store = ObjectStore(s3_client, unique_bucket_name("missing"))
    with pytest.raises(BucketNotLockedError, match="init-bucket"):
        store.check_bucket()
    # The server runs with autoCreateBucket off: a put does not conjure the bucket.
    with pytest.raises(BucketNotLockedError, match="does not exist"):
        store.put_bytes("k", b"x", lock=_lock(), content_type="text/plain")


# -- writes -----------------------------------------------------------------------------------


@pytest.mark.integration
def test_put_bytes_stores_locked_with_sha256(locked_bucket: ObjectStore) -> None:
    data = b'{"followup": 1}'
    lock = _lock("COMPLIANCE", days=2)
    stored = locked_bucket.put_bytes(
        "debts/d1/records/f1.json",
        data,
        lock=lock,
        content_type="application/json",
        metadata={"debt-id": "d1"},
    )
    assert stored.created and stored.version_id
    assert stored.sha256 == hashlib.sha256(data).hexdigest() and stored.size == len(data)

    info = locked_bucket.head(stored.key)
    assert info is not None
    assert info.sha256 == stored.sha256 and info.version_id == stored.version_id
    assert info.lock_mode == "COMPLIANCE" and info.retain_until == lock.retain_until
    assert info.content_type == "application/json" and info.metadata["debt-id"] == "d1"
    assert not info.legal_hold
    assert locked_bucket.get_lock(stored.key, stored.version_id) == lock
    assert locked_bucket.read_bytes(stored.key) == data
    assert locked_bucket.sha256_of(stored.key, stored.version_id) == (stored.sha256, len(data))
    assert list(locked_bucket.list_keys("debts/d1/")) == [stored.key]
    assert locked_bucket.head("debts/d1/records/none.json") is None


@pytest.mark.integration
def test_rerun_of_same_bytes_is_not_a_new_version(locked_bucket: ObjectStore) -> None:
    first = locked_bucket.put_bytes("k.json", b"same", lock=_lock(), content_type="text/plain")
    again = locked_bucket.put_bytes("k.json", b"same", lock=_lock(), content_type="text/plain")
    assert first.created and not again.created
    assert again.version_id == first.version_id and again.sha256 == first.sha256
    assert len(_versions(locked_bucket, "k.json")) == 1


@pytest.mark.integration
def test_different_bytes_on_same_key_conflict_loudly(locked_bucket: ObjectStore) -> None:
    first = locked_bucket.put_bytes("k.json", b"original", lock=_lock(), content_type="text/plain")
    with pytest.raises(ObjectConflictError) as info:
        locked_bucket.put_bytes("k.json", b"tampered", lock=_lock(), content_type="text/plain")
    assert info.value.context["existing_sha256"] == first.sha256
    assert info.value.context["key"] == "k.json"
    assert locked_bucket.read_bytes("k.json") == b"original"
    assert len(_versions(locked_bucket, "k.json")) == 1


@pytest.mark.integration
def test_wrong_checksum_is_refused_by_the_server(
    locked_bucket: ObjectStore, tmp_path: Path
) -> None:
    wrong = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    with pytest.raises(ClientError) as raw:
        locked_bucket.client.put_object(
            Bucket=locked_bucket.bucket, Key="raw.bin", Body=b"payload", ChecksumSHA256=wrong
        )
    assert raw.value.response["Error"]["Code"] == "BadDigest"

    # Through the store: the caller's SHA-256 does not match the bytes that arrive.
    path = tmp_path / "letter.pdf"
    path.write_bytes(b"%PDF-1.7 payload")
    with pytest.raises(StorageError, match="corrupted in transit") as info:
        locked_bucket.put_file(
            "letter.pdf",
            path,
            sha256=hashlib.sha256(b"what we thought we had").hexdigest(),
            size=path.stat().st_size,
            lock=_lock(),
            content_type="application/pdf",
        )
    assert info.value.context["code"] == "BadDigest"
    assert locked_bucket.head("letter.pdf") is None
    assert locked_bucket.head("raw.bin") is None


@pytest.mark.integration
def test_multipart_put_file_streams_and_keeps_full_sha256(
    locked_bucket: ObjectStore, tmp_path: Path
) -> None:
    settings = StorageSettings(multipart_threshold=8 * MiB, part_size=5 * MiB, read_chunk=MiB)
    store = ObjectStore(locked_bucket.client, locked_bucket.bucket, settings)
    path = tmp_path / "call.mp3"
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        for _ in range(40):
            block = os.urandom(MiB)
            digest.update(block)
            fh.write(block)
    size = 40 * MiB
    sha = digest.hexdigest()

    tracemalloc.start()
    try:
        stored = store.put_file(
            "media/call.mp3", path, sha256=sha, size=size, lock=_lock(), content_type="audio/mpeg"
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.created and stored.size == size
    # About one part in memory at a time, never the whole 40 MiB file.
    assert peak < 2 * settings.part_size, f"peak {peak / MiB:.1f} MiB"
    print(f"multipart put of 40 MiB: traced peak {peak / MiB:.1f} MiB")

    info = store.head("media/call.mp3")
    assert info is not None and info.sha256 == sha and info.size == size
    assert info.lock_mode == "COMPLIANCE"
    assert store.sha256_of("media/call.mp3") == (sha, size)

    again = store.put_file(
        "media/call.mp3", path, sha256=sha, size=size, lock=_lock(), content_type="audio/mpeg"
    )
    assert not again.created and again.version_id == stored.version_id
    assert len(_versions(store, "media/call.mp3")) == 1


@pytest.mark.integration
def test_multipart_failure_aborts_the_upload(locked_bucket: ObjectStore, tmp_path: Path) -> None:
    settings = StorageSettings(multipart_threshold=5 * MiB, part_size=5 * MiB)
    store = ObjectStore(locked_bucket.client, locked_bucket.bucket, settings)
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(11 * MiB))
    with pytest.raises(StorageError, match="changed while uploading"):
        store.put_file(
            "big.bin",
            path,
            sha256="0" * 64,
            size=11 * MiB,
            lock=_lock(),
            content_type="application/octet-stream",
        )
    uploads = store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    assert uploads == []
    assert store.head("big.bin") is None


# -- retention, legal hold, deletion ----------------------------------------------------------


@pytest.mark.integration
def test_compliance_cannot_be_shortened_but_can_be_extended(locked_bucket: ObjectStore) -> None:
    lock = _lock("COMPLIANCE", days=1)
    stored = locked_bucket.put_bytes("c.json", b"c", lock=lock, content_type="text/plain")
    key, vid = stored.key, stored.version_id
    assert vid is not None

    with pytest.raises(RetentionError) as info:
        locked_bucket.set_retention(
            key, vid, mode="COMPLIANCE", retain_until=lock.retain_until - timedelta(hours=12)
        )
    assert info.value.context["key"] == key
    assert locked_bucket.get_lock(key, vid) == lock

    later = lock.retain_until + timedelta(days=30)
    assert locked_bucket.extend_retention(key, vid, mode="COMPLIANCE", retain_until=later)
    assert locked_bucket.get_lock(key, vid) == Lock("COMPLIANCE", later)
    # Never shortens: an earlier date changes nothing.
    earlier = lock.retain_until
    assert not locked_bucket.extend_retention(key, vid, mode="COMPLIANCE", retain_until=earlier)
    assert locked_bucket.get_lock(key, vid) == Lock("COMPLIANCE", later)
    # Never weakens: asking for GOVERNANCE on a COMPLIANCE object keeps COMPLIANCE.
    latest = later + timedelta(days=1)
    assert locked_bucket.extend_retention(key, vid, mode="GOVERNANCE", retain_until=latest)
    assert locked_bucket.get_lock(key, vid) == Lock("COMPLIANCE", latest)

    with pytest.raises(RetentionError):
        locked_bucket.delete_version(key, vid, bypass_governance=True)
    assert locked_bucket.head(key, vid) is not None


@pytest.mark.integration
def test_governance_delete_needs_bypass(locked_bucket: ObjectStore) -> None:
    stored = locked_bucket.put_bytes("g.json", b"g", lock=_lock("GOVERNANCE"), content_type="x/y")
    assert stored.version_id is not None
    with pytest.raises(RetentionError, match="refused"):
        locked_bucket.delete_version(stored.key, stored.version_id)
    assert locked_bucket.head(stored.key, stored.version_id) is not None
    locked_bucket.delete_version(stored.key, stored.version_id, bypass_governance=True)
    assert locked_bucket.head(stored.key, stored.version_id) is None


@pytest.mark.integration
def test_governance_extends_without_bypass_and_shortens_only_with_it(
    locked_bucket: ObjectStore,
) -> None:
    lock = _lock("GOVERNANCE", days=1)
    stored = locked_bucket.put_bytes("g2.json", b"g", lock=lock, content_type="x/y")
    key, vid = stored.key, stored.version_id
    later = datetime.now(UTC) + timedelta(days=10, microseconds=5)
    assert locked_bucket.extend_retention(key, vid, mode="GOVERNANCE", retain_until=later)
    # Read back equal to what was asked (rounded up to the second): a rerun has nothing to do.
    assert not locked_bucket.extend_retention(key, vid, mode="GOVERNANCE", retain_until=later)
    with pytest.raises(RetentionError):
        locked_bucket.set_retention(key, vid, mode="GOVERNANCE", retain_until=lock.retain_until)
    locked_bucket.set_retention(
        key, vid, mode="GOVERNANCE", retain_until=lock.retain_until, bypass_governance=True
    )
    assert locked_bucket.get_lock(key, vid) == lock


@pytest.mark.integration
def test_legal_hold_blocks_delete_even_with_bypass(locked_bucket: ObjectStore) -> None:
    stored = locked_bucket.put_bytes("h.json", b"h", lock=_lock("GOVERNANCE"), content_type="x/y")
    key, vid = stored.key, stored.version_id
    assert vid is not None
    locked_bucket.set_legal_hold(key, vid, True)
    lock = locked_bucket.get_lock(key, vid)
    assert lock is not None and lock.legal_hold
    with pytest.raises(RetentionError, match="even with governance bypass"):
        locked_bucket.delete_version(key, vid, bypass_governance=True)
    assert locked_bucket.head(key, vid) is not None

    locked_bucket.set_legal_hold(key, vid, False)
    locked_bucket.delete_version(key, vid, bypass_governance=True)
    assert locked_bucket.head(key, vid) is None


@pytest.mark.integration
def test_legal_hold_can_be_set_at_put(locked_bucket: ObjectStore) -> None:
    stored = locked_bucket.put_bytes(
        "held.json", b"x", lock=_lock("GOVERNANCE", hold=True), content_type="x/y"
    )
    info = locked_bucket.head(stored.key)
    assert info is not None and info.legal_hold and info.lock_mode == "GOVERNANCE"


@pytest.mark.integration
def test_retain_until_in_the_past_is_refused(locked_bucket: ObjectStore) -> None:
    with pytest.raises(RetentionError, match="must be in the future") as info:
        locked_bucket.put_bytes("past.json", b"p", lock=_lock(days=-1), content_type="x/y")
    assert info.value.context["key"] == "past.json"
    assert locked_bucket.head("past.json") is None

    stored = locked_bucket.put_bytes("now.json", b"n", lock=_lock(), content_type="x/y")
    with pytest.raises(RetentionError):
        locked_bucket.set_retention(
            stored.key,
            stored.version_id,
            mode="GOVERNANCE",
            retain_until=datetime.now(UTC) - timedelta(days=1),
            bypass_governance=True,
        )


# -- client and CLI ---------------------------------------------------------------------------


@pytest.mark.integration
def test_make_s3_client_reads_boto3_env(s3_env: dict[str, str]) -> None:
    client = make_s3_client()
    assert client.meta.endpoint_url == s3_env["AWS_ENDPOINT_URL_S3"]
    assert client.meta.region_name == "us-east-1"
    assert isinstance(client.list_buckets()["Buckets"], list)


@pytest.mark.integration
def test_cli_init_bucket(s3_env: dict[str, str], s3_client: Any) -> None:
    runner = CliRunner()
    name = unique_bucket_name("cli")
    result = runner.invoke(main, ["init-bucket", name, "--mode", "compliance", "--days", "90"])
    assert result.exit_code == 0, result.output
    assert "Object Lock enabled" in result.output and "COMPLIANCE 90 days" in result.output
    conf = s3_client.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]
    assert conf["Rule"]["DefaultRetention"] == {"Mode": "COMPLIANCE", "Days": 90}

    result = runner.invoke(main, ["init-bucket", name, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "bucket": name,
        "object_lock": True,
        "default_mode": "COMPLIANCE",
        "default_days": 90,
        "abort_incomplete_uploads_days": 7,
        "warnings": [],
    }

    plain = unique_bucket_name("plain")
    s3_client.create_bucket(Bucket=plain)
    result = runner.invoke(main, ["init-bucket", plain])
    assert result.exit_code == 2  # a bucket that cannot hold evidence: a configuration error
    assert "no Object Lock" in result.output

    result = runner.invoke(main, ["init-bucket", unique_bucket_name(), "--days", "5"])
    assert result.exit_code == 2
    assert "--mode and --days go together" in result.output


def test_large_block_reader_returns_big_blocks_and_seeks(tmp_path: Path) -> None:
    from archiver.store.transfer import FileSlice

    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    with FileSlice(path, 0, 1024 * 1024, 256 * 1024) as body:
        first = body.read(8192)  # http.client asks for 8 KiB: it gets a large block
        assert len(first) == 256 * 1024
        body.seek(0)
        assert body.read() == path.read_bytes()
        assert body.tell() == 1024 * 1024


def test_uploads_are_pinned_by_their_signed_checksum_not_hashed_again_to_sign(
    locked_bucket: ObjectStore,
) -> None:
    """The signer does not read the body (no second SHA-256 pass over every byte): the
    payload is UNSIGNED-PAYLOAD, and the x-amz-checksum-sha256 the server checks the bytes
    against is one of the signed headers, so a changed body or checksum is still refused."""
    sent: list[dict[str, str]] = []

    def spy(request: Any, **_: Any) -> None:
        sent.append(dict(request.headers))

    locked_bucket.client.meta.events.register("before-send.s3.PutObject", spy)
    try:
        data = b"evidence bytes"
        lock = Lock("GOVERNANCE", datetime.now(UTC) + timedelta(days=1))
        locked_bucket.put_bytes("k/known-sha.bin", data, lock=lock, content_type="text/plain")
    finally:
        locked_bucket.client.meta.events.unregister("before-send.s3.PutObject", spy)
    (sent_headers,) = sent
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in sent_headers.items()}
    assert headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    expected = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert headers["x-amz-checksum-sha256"] == expected
    # A body without that checksum header (a retention, a hold) keeps its SHA-256 signed.
    others: list[Any] = []

    def keep(request: Any, **_: Any) -> None:
        others.append(request)

    locked_bucket.client.meta.events.register("before-send.s3.PutObjectRetention", keep)
    try:
        stored = locked_bucket.head("k/known-sha.bin")
        assert stored is not None
        locked_bucket.extend_retention(
            "k/known-sha.bin",
            stored.version_id,
            mode="GOVERNANCE",
            retain_until=datetime.now(UTC) + timedelta(days=2),
        )
    finally:
        locked_bucket.client.meta.events.unregister("before-send.s3.PutObjectRetention", keep)
    (retention,) = others
    body_sha = retention.headers["X-Amz-Content-SHA256"]
    body_sha = body_sha.decode() if isinstance(body_sha, bytes) else body_sha
    assert body_sha == hashlib.sha256(retention.body).hexdigest()
    signed = headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert "x-amz-checksum-sha256" in signed
    assert "if-none-match" in signed


def test_file_slice_is_one_part_of_the_file_and_rewinds(tmp_path: Path) -> None:
    import io

    from archiver.store.transfer import FileSlice

    path = tmp_path / "f.bin"
    data = bytes(range(256)) * 64  # 16 KiB
    path.write_bytes(data)
    with FileSlice(path, 5000, 6000, 4096) as part:
        assert part.read(10) == data[5000:9096]  # a large block, not 10 bytes
        assert part.tell() == 4096
        assert part.read() == data[9096:11000]  # never past the slice
        assert part.read(1) == b""
        assert part.seek(0, io.SEEK_END) == 6000
        assert part.seek(-100, io.SEEK_END) == 5900
        assert part.read() == data[10900:11000]
        part.seek(0)
        assert b"".join(iter(lambda: part.read(1000), b"")) == data[5000:11000]


@pytest.mark.integration
def test_read_hashed_gives_what_a_head_says_and_the_bytes_hash(locked_bucket: ObjectStore) -> None:
    data = b"recording bytes" * 1000
    stored = locked_bucket.put_bytes("k/r.bin", data, lock=_lock(), content_type="audio/wav")
    got = locked_bucket.read_hashed("k/r.bin", stored.version_id)
    assert got is not None
    info, sha, size = got
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    head = locked_bucket.head("k/r.bin", stored.version_id)
    assert info == head  # size, lock, hold, metadata: the same as a HEAD
    assert info.lock_mode == "COMPLIANCE" and info.sha256 == sha
    assert locked_bucket.read_hashed("k/absent.bin") is None
