"""S3 faults between the archiver and SeaweedFS: every one ends complete or says what is missing.

A fault-injecting proxy of the tests' own (tests/fixtures/faultproxy.py) sits in front of the
session's SeaweedFS; the CLI talks to it through ``AWS_ENDPOINT_URL_S3``. Faults: 503 SlowDown,
500 InternalError, a connection reset in the middle of the request body, and the server's
answer lost after the write succeeded. Targets: media PUTs, record PUTs, the debt record, the
parts and the completion of a multipart upload, the manifest and the dossier.

* One faulted request on every target (all in one run per fault): botocore's retries absorb
  them, the run exits 0 and the archive is complete; a rerun writes nothing.
* Every attempt at one object faulted (one debt per target, one run per fault and outcome):
  a medium ends as exit 3, the debt ``partial`` with a problem naming the missing key, also
  listed in the manifest; an object no manifest can do without (a record, the debt record,
  the manifest itself) fails the debt (exit 1) naming the key, with no manifest written. A
  rerun without faults then ends complete.

After every run, read directly from SeaweedFS (not through the proxy): exactly one version per
key, no multipart upload left open, and every object a manifest names exists with the
manifest's version, size and SHA-256; at the end ``archiver verify`` is clean.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError
from click.testing import CliRunner
from fixtures.faultproxy import FAULTS, Fault, FaultProxy, Rule, s3_operation
from fixtures_archive import Env
from fixtures_s3 import drop_bucket, unique_bucket_name

from archiver.cli import main

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
# Above the multipart threshold the runs set (ARCHIVER_MULTIPART_THRESHOLD, 16 MiB): two
# parts of 16 MiB and 64 KiB.
MULTIPART_THRESHOLD = 16 * MiB
BIG_AUDIO = MULTIPART_THRESHOLD + 64 * 1024

# target -> S3 operation and key pattern under debts/{debt}/; ``{call}`` / ``{big}`` are the
# followups with the small and the large recording (see :func:`scenario`)
TARGETS: dict[str, tuple[str, str]] = {
    "media": ("PutObject", "media/{call}/"),
    "record": ("PutObject", "records/{call}/"),
    "debt": ("PutObject", "debt/"),
    "part": ("UploadPart", "media/{big}/"),
    "complete": ("CompleteMultipartUpload", "media/{big}/"),
    "manifest": ("PutObject", "manifests/"),
    "dossier": ("PutObject", "dossiers/"),
}
MULTIPART = ("part", "complete")
MEDIA = ("media", *MULTIPART)  # missing, the manifest lists a problem: exit 3
NEEDED = ("record", "debt", "manifest")  # missing, no manifest can be written: exit 1
PERSISTENT = 100  # more than botocore's attempts at one object


# --------------------------------------------------------------------------- the proxy itself


def test_rules_pick_the_nth_matching_request_and_count_on() -> None:
    rule = Rule("internal", method="PUT", op="PutObject", key=r"/media/", nth=2, count=2)
    assert not rule.matches("GET", "GetObject", "debts/d/media/f/a.mp3")
    assert not rule.matches("PUT", "PutObject", "debts/d/records/f/r.json")
    hits = [rule.take() for _ in range(5) if rule.matches("PUT", "PutObject", "x/media/y")]
    assert hits == [False, True, True, False, False]
    assert s3_operation("PUT", "/b/k/x.mp3?partNumber=2&uploadId=u") == ("UploadPart", "k/x.mp3")
    assert s3_operation("POST", "/b/k?uploadId=u") == ("CompleteMultipartUpload", "k")
    assert s3_operation("POST", "/b/k?uploads") == ("CreateMultipartUpload", "k")
    assert s3_operation("PUT", "/b/a%20b") == ("PutObject", "a b")
    assert s3_operation("PUT", "/b/k?retention") == ("PUT ?retention", "k")
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("http://192.0.2.1:8333")
    with pytest.raises(ValueError):
        Rule("teapot")  # type: ignore[arg-type]


def _signed(server: Any, url: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
    """SigV4 headers for a raw request (the payload hash as given in the headers)."""
    request = AWSRequest("PUT", url, data=body, headers=headers)
    SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", server.region).add_auth(
        request
    )
    return dict(request.headers.items())


def test_the_proxy_relays_aws_chunked_and_chunked_bodies_and_keeps_the_connection(
    s3_server: Any, s3_client: Any
) -> None:
    bucket = unique_bucket_name("proxy")
    s3_client.create_bucket(Bucket=bucket)
    data = bytes(range(256)) * 300
    checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
    # aws-chunked content encoding: unsigned chunks, then the checksum as a trailer
    encoded = b"".join(
        f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in (data[:30000], data[30000:])
    )
    encoded += f"0\r\nx-amz-checksum-sha256:{checksum}\r\n\r\n".encode()
    aws_chunked = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(len(data)),
        "X-Amz-Trailer": "x-amz-checksum-sha256",
        "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    }
    with FaultProxy(s3_server.endpoint_url) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        url = f"{proxy.url}/{bucket}"
        # framed by Content-Length
        headers = {**aws_chunked, "Content-Length": str(len(encoded))}
        conn.request(
            "PUT", f"/{bucket}/a", encoded, _signed(s3_server, f"{url}/a", encoded, headers)
        )
        assert conn.getresponse().read() == b""
        # the same bytes again inside Transfer-Encoding: chunked, on the same connection
        headers = _signed(s3_server, f"{url}/b", None, aws_chunked)
        pieces = (encoded[i : i + 7000] for i in range(0, len(encoded), 7000))
        conn.request("PUT", f"/{bucket}/b", pieces, headers, encode_chunked=True)
        assert conn.getresponse().read() == b""
        conn.close()
        assert [(s.op, s.key, s.status) for s in proxy.seen] == [
            ("PutObject", "a", 200),
            ("PutObject", "b", 200),
        ]
        assert proxy.connections == 1
    for key in ("a", "b"):
        assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    drop_bucket(s3_client, bucket)


def test_each_fault_as_botocore_sees_it_and_the_proxy_stops_cleanly(
    s3_server: Any, s3_client: Any
) -> None:
    bucket = unique_bucket_name("proxy")
    s3_client.create_bucket(Bucket=bucket)
    body = bytes(300_000)
    with FaultProxy(s3_server.endpoint_url) as proxy:
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=proxy.url,
            aws_access_key_id=s3_server.access_key,
            aws_secret_access_key=s3_server.secret_key,
            region_name=s3_server.region,
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
        )
        proxy.add(*(Rule(fault, key=f"^{fault}$") for fault in FAULTS))
        for fault, code in (("slowdown", "SlowDown"), ("internal", "InternalError")):
            with pytest.raises(ClientError) as info:
                client.put_object(Bucket=bucket, Key=fault, Body=body)
            assert info.value.response["Error"]["Code"] == code
        for fault in ("reset", "drop_response"):
            with pytest.raises(BotoCoreError):
                client.put_object(Bucket=bucket, Key=fault, Body=body)
        assert client.put_object(Bucket=bucket, Key="fine", Body=body)["ETag"]
        assert [(s.key, s.status, s.fault) for s in proxy.seen] == [
            ("slowdown", 503, "slowdown"),
            ("internal", 500, "internal"),
            ("reset", None, "reset"),
            ("drop_response", 200, "drop_response"),  # written, the answer lost
            ("fine", 200, None),
        ]
        kept_open = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        kept_open.connect()
        port = proxy.port
    stored = {o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert stored == {"drop_response", "fine"}
    drop_bucket(s3_client, bucket)
    assert not [t for t in threading.enumerate() if t.name.startswith("faultproxy")]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    kept_open.close()


# --------------------------------------------------------------------------- the scenario


@pytest.fixture
def locked_bucket(locked_bucket: Any, s3_client: Any) -> Iterator[Any]:
    """Extends the shared fixture (a brand-new, already warmed Object-Lock bucket per test):
    the bucket is deleted afterwards."""
    yield locked_bucket
    drop_bucket(s3_client, locked_bucket.bucket)


@pytest.fixture
def proxy(env: Env) -> Iterator[FaultProxy]:
    with FaultProxy(env.s3.endpoint_url) as p:
        yield p


@dataclass(frozen=True)
class Debt:
    id: str
    call: str  # the followup with a small recording
    big: str | None  # the followup with a recording stored in parts


@dataclass
class Scenario:
    """Debts of the simulator (with our followups only), archived through the proxy."""

    env: Env
    proxy: FaultProxy
    s3: Any  # a boto3 client straight to SeaweedFS, for the checks
    debts: list[Debt]
    dossier: bool  # render and verify dossiers (the slow part of a run: only when needed)
    attempts: int | None = None  # botocore's AWS_MAX_ATTEMPTS (None: its default, 3)

    @property
    def ids(self) -> list[str]:
        return [d.id for d in self.debts]

    def cli_env(self) -> dict[str, str]:
        env = {
            **self.env.cli_env(),
            "AWS_ENDPOINT_URL_S3": self.proxy.url,
            "ARCHIVER_MULTIPART_THRESHOLD": str(MULTIPART_THRESHOLD),
        }
        if self.attempts is not None:
            env["AWS_MAX_ATTEMPTS"] = str(self.attempts)
        return env

    def archive(self) -> tuple[int, dict[str, dict[str, Any]]]:
        """``archiver archive DEBT... --json`` through the proxy: exit code, line per debt."""
        args = ["archive", *self.ids, "--json", *([] if self.dossier else ["--no-dossier"])]
        r = CliRunner().invoke(main, args, env=self.cli_env())
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise AssertionError(f"archive crashed: {r.exception!r}\n{r.output}") from (r.exception)
        lines = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        assert lines and "summary" in lines[-1], r.output
        by_debt = {line["debt_id"]: line for line in lines[:-1]}
        assert list(by_debt) == self.ids, r.output
        return r.exit_code, by_debt

    def verify(self) -> tuple[int, str]:
        """``archiver verify DEBT... --json`` straight against SeaweedFS."""
        args = ["verify", *self.ids, "--json", *([] if self.dossier else ["--no-dossier"])]
        r = CliRunner().invoke(main, args, env=self.env.cli_env())
        return r.exit_code, r.output

    def rule(self, fault: Fault, target: str, debt: Debt, count: int) -> Rule:
        op, key = TARGETS[target]
        pattern = f"^debts/{debt.id}/" + key.format(call=debt.call, big=debt.big)
        return Rule(fault, op=op, key=pattern, count=count)

    def faulted_key(self, debt: Debt) -> str:
        """The one object of ``debt`` the faults hit."""
        keys = {f.key for f in self.proxy.faults() if f.key.startswith(f"debts/{debt.id}/")}
        assert len(keys) == 1, f"expected faults on one object of {debt.id}, got {keys}"
        return keys.pop()


def scenario(env: Env, proxy: FaultProxy, s3: Any, big: list[bool], *, dossier: bool) -> Scenario:
    """One simulator debt per entry of ``big``, its own followups removed, given a call (small
    recording), a posted letter (PDF) and, where ``big``, a call whose recording is stored in
    parts."""
    sim, debts = env.sim, []
    ids = env.debts()
    assert len(ids) >= len(big)
    for debt_id, with_big in zip(ids, big, strict=False):
        for fid in sim.followup_ids(debt_id):
            sim.remove_followup(fid)
        call = sim.add_followup(debt_id, type="call", audio_size=40_000)["id"]
        sim.add_followup(debt_id, type="postmail", status="sent")
        large = sim.add_followup(debt_id, type="call", audio_size=BIG_AUDIO) if with_big else None
        debts.append(Debt(debt_id, call, large["id"] if large else None))
    return Scenario(env, proxy, s3, debts, dossier)


# --------------------------------------------------------------------------- what must hold


def stored_versions(s: Scenario) -> dict[str, list[dict[str, Any]]]:
    """Every version under ``debts/``, read directly from SeaweedFS: key -> version entries."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    markers: list[str] = []
    for page in s.s3.get_paginator("list_object_versions").paginate(
        Bucket=s.env.store.bucket, Prefix="debts/"
    ):
        for v in page.get("Versions", []):
            by_key.setdefault(v["Key"], []).append(v)
        markers += [m["Key"] for m in page.get("DeleteMarkers", [])]
    assert not markers, f"delete markers: {markers}"
    return by_key


def named_objects(manifest: dict[str, Any]) -> Iterator[tuple[str, str | None, str, int]]:
    """``(key, version id, sha256, size)`` of every object a manifest names."""
    debt = manifest.get("debt")
    if debt:
        yield debt["key"], debt.get("version_id"), debt["sha256"], debt["size"]
    for f in manifest["followups"]:
        yield f["record_key"], f.get("record_version_id"), f["record_sha256"], f["record_size"]
        for m in f["media"]:
            yield m["key"], m.get("version_id"), m["sha256"], m["size"]


def assert_sound(s: Scenario) -> dict[str, list[dict[str, Any]]]:
    """Exactly one version per key, every object a manifest names stored with the manifest's
    version, size and SHA-256, no multipart upload left open. The manifests of each debt,
    oldest first."""
    bucket = s.env.store.bucket
    versions = stored_versions(s)
    dupes = {k: len(v) for k, v in versions.items() if len(v) != 1}
    assert not dupes, f"more than one version: {dupes}"
    uploads = s.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert not uploads, f"multipart uploads left open: {[u['Key'] for u in uploads]}"
    manifests: dict[str, list[dict[str, Any]]] = {d: [] for d in s.ids}
    for key in sorted(k for k in versions if "/manifests/" in k):
        manifest = json.loads(s.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        for obj_key, version_id, sha256, size in named_objects(manifest):
            assert obj_key in versions, f"{key} names {obj_key}, which is not stored"
            (stored,) = versions[obj_key]
            assert version_id == stored["VersionId"], (key, obj_key, version_id)
            assert stored["Size"] == size, (key, obj_key, stored["Size"], size)
            body = s.s3.get_object(Bucket=bucket, Key=obj_key, VersionId=version_id)["Body"]
            digest = hashlib.sha256()
            for chunk in body.iter_chunks(MiB):
                digest.update(chunk)
            assert digest.hexdigest() == sha256, (key, obj_key)
        manifests[manifest["debt_id"]].append(manifest)
    return manifests


def blocking(problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in problems if p.get("severity") != "warning"]


def assert_complete(s: Scenario) -> None:
    """The latest manifest of each debt holds every followup with every medium and no
    blocking problem, its dossier is stored (when rendered), and ``archiver verify`` (chain,
    objects, locks, dossier re-render) is clean."""
    manifests = assert_sound(s)
    sim, versions = s.env.sim, stored_versions(s)
    for debt_id in s.ids:
        assert manifests[debt_id], f"no manifest stored for {debt_id}"
        latest = manifests[debt_id][-1]
        assert not blocking(latest["problems"]), latest["problems"]
        assert {f["id"] for f in latest["followups"]} == set(sim.followup_ids(debt_id))
        for f in latest["followups"]:
            assert {m["kind"]: m["sha256"] for m in f["media"]} == {
                kind: sim.media_sha256(f["id"], kind) for kind in sim.media_kinds(f["id"])
            }
        if s.dossier:
            dossier = f"debts/{debt_id}/dossiers/{latest['sequence']:08d}.pdf"
            assert dossier in versions, f"{dossier} not stored"
    code, output = s.verify()
    assert code == 0, output


def rerun_completes(s: Scenario) -> None:
    s.proxy.clear()
    s.attempts = None
    code, lines = s.archive()
    assert code == 0, lines
    assert_complete(s)


# --------------------------------------------------------------------------- one fault each


@pytest.mark.parametrize("fault", FAULTS)
def test_one_fault_on_each_write_is_retried_and_the_archive_is_complete(
    env: Env, proxy: FaultProxy, s3_client: Any, fault: Fault
) -> None:
    s = scenario(env, proxy, s3_client, [True], dossier=True)
    (debt,) = s.debts
    rules = {target: s.rule(fault, target, debt, count=1) for target in TARGETS}
    proxy.add(*rules.values())
    code, lines = s.archive()
    missed = [target for target, r in rules.items() if r.fired != 1]
    assert not missed, f"faults not injected on {missed}: {proxy.seen}"
    assert code == 0, lines
    assert lines[debt.id]["status"] == "archived" and lines[debt.id]["sequence"] == 1
    assert_complete(s)
    proxy.clear()
    code, lines = s.archive()
    assert code == 0 and lines[debt.id]["status"] == "unchanged", lines
    assert not [r for r in proxy.seen if r.method in ("PUT", "POST")], "the rerun wrote"
    assert_sound(s)


# --------------------------------------------------------------------------- every attempt


def persistent(
    env: Env,
    proxy: FaultProxy,
    s3: Any,
    fault: Fault,
    targets: tuple[str, ...],
    *,
    dossier: bool = False,
) -> tuple[Scenario, int, dict[str, dict[str, Any]]]:
    """One debt per target, every attempt at that target's object faulted, one run; dossiers
    rendered only when one is a target or ``dossier`` asks."""
    big = [t in MULTIPART for t in targets]
    s = scenario(env, proxy, s3, big, dossier=dossier or "dossier" in targets)
    # Every attempt is faulted whatever their number: two instead of three halve the waiting
    # (SlowDown backs off up to 1 s, then 2 s).
    s.attempts = 2
    proxy.add(*(s.rule(fault, t, d, PERSISTENT) for t, d in zip(targets, s.debts, strict=True)))
    code, lines = s.archive()
    return s, code, lines


@pytest.mark.parametrize("fault", FAULTS)
def test_a_medium_that_cannot_be_stored_is_named_exit_3_and_a_rerun_completes(
    env: Env, proxy: FaultProxy, s3_client: Any, fault: Fault
) -> None:
    s, code, lines = persistent(env, proxy, s3_client, fault, MEDIA)
    assert code == 3, lines
    manifests = assert_sound(s)
    for target, debt in zip(MEDIA, s.debts, strict=True):
        key, line = s.faulted_key(debt), lines[debt.id]
        assert line["status"] == "partial" and line["sequence"] == 1, (target, line)
        named = blocking(line["problems"])
        assert len(named) == 1 and key in named[0]["message"], (target, key, named)
        assert named[0]["followup_id"] == (debt.big or debt.call), (target, named)
        # manifest 1 lists the problem, and names no object that is not stored (checked
        # above); after a lost answer the medium is stored but not named, a rerun reuses it
        (manifest,) = manifests[debt.id]
        assert [p["message"] for p in blocking(manifest["problems"])] == [named[0]["message"]]
        assert key not in {k for k, *_ in named_objects(manifest)}, (target, key)
    rerun_completes(s)


@pytest.mark.parametrize("fault", FAULTS)
def test_an_object_a_manifest_needs_fails_the_debt_naming_it_and_a_rerun_completes(
    env: Env, proxy: FaultProxy, s3_client: Any, fault: Fault
) -> None:
    s, code, lines = persistent(env, proxy, s3_client, fault, NEEDED)
    assert code == 1, lines
    manifests = assert_sound(s)
    for target, debt in zip(NEEDED, s.debts, strict=True):
        key, line = s.faulted_key(debt), lines[debt.id]
        assert line["status"] == "failed" and key in line["error"]["message"], (target, line)
        # Nothing is committed without it; only a lost answer to the manifest's own
        # (successful) write leaves a manifest, which the rerun finds unchanged.
        written = target == "manifest" and fault == "drop_response"
        assert len(manifests[debt.id]) == written, (target, manifests[debt.id])
    rerun_completes(s)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_dossier_that_cannot_be_stored_is_named_exit_3_and_a_rerun_completes(
    env: Env, proxy: FaultProxy, s3_client: Any, fault: Fault
) -> None:
    s, code, lines = persistent(env, proxy, s3_client, fault, ("dossier",))
    (debt,) = s.debts
    key, line = s.faulted_key(debt), lines[debt.id]
    assert len(assert_sound(s)[debt.id]) == 1  # the manifest stands
    assert code == 3, line
    assert line["status"] == "partial" and line["sequence"] == 1, line
    assert any(key in p["message"] for p in blocking(line["problems"])), (key, line)
    rerun_completes(s)


def test_after_lost_answers_a_rerun_brings_the_catalog_up_to_date(
    env: Env, proxy: FaultProxy, s3_client: Any
) -> None:
    targets = ("manifest", "dossier")
    s, _, _ = persistent(env, proxy, s3_client, "drop_response", targets, dossier=True)
    assert_sound(s)
    rerun_completes(s)
    r = CliRunner().invoke(main, ["status", "--json"], env=s.env.cli_env())
    rows = {
        row["debt_id"]: row
        for row in map(json.loads, r.stdout.splitlines())
        if "summary" not in row
    }
    known = {
        d.id: (rows.get(d.id, {}).get("sequence"), rows.get(d.id, {}).get("dossier_sequence"))
        for d in s.debts
    }
    # (latest manifest, latest dossier) as `archiver status` knows them; S3 holds (1, 1)
    assert known == {d.id: (1, 1) for d in s.debts}
