"""S3 fixtures: one real SeaweedFS server for the whole session, fresh Object-Lock buckets.

``s3_server``      the LocalS3Server (session): ``.endpoint_url``, ``.env()``, ``.client()``
``s3_client``      a boto3 S3 client for it (session)
``s3_env``         monkeypatches AWS_* so boto3's own env lookup reaches the server (function)
``locked_bucket``  an ObjectStore on a new Object-Lock bucket with a unique name (function),
                   made ahead by ``warm_buckets`` (session)
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from archiver.devkit.s3server import LocalS3Server
from archiver.store.objects import ObjectStore

__all__ = [
    "WarmBuckets",
    "warm_buckets",
    "drop_bucket",
    "locked_bucket",
    "s3_client",
    "s3_env",
    "s3_server",
    "unique_bucket_name",
]


def unique_bucket_name(prefix: str = "test") -> str:
    """A bucket name no other test uses (lowercase, 3-63 characters)."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def drop_bucket(s3: Any, name: str) -> None:
    """Delete every version and delete marker (governance bypassed) and the bucket.

    ``weed mini`` has room for a limited number of buckets holding data at once (about 78);
    a test whose objects are only GOVERNANCE-locked and not held can give its bucket back.
    """
    objects = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            objects.append({"Key": v["Key"], "VersionId": v["VersionId"]})
    for i in range(0, len(objects), 1000):
        s3.delete_objects(
            Bucket=name,
            Delete={"Objects": objects[i : i + 1000], "Quiet": True},
            BypassGovernanceRetention=True,
        )
    s3.delete_bucket(Bucket=name)


@pytest.fixture(scope="session")
def s3_server(request: pytest.FixtureRequest) -> Iterator[LocalS3Server]:
    """A SeaweedFS ``weed mini`` on 127.0.0.1, started once per test session."""
    server = LocalS3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        plugins = request.config.pluginmanager
        reporter: Any = plugins.get_plugin("terminalreporter")
        capture: Any = plugins.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(
                    f"SeaweedFS: started in {server.start_seconds or 0:.2f} s, "
                    f"stopped in {server.stop_seconds or 0:.2f} s"
                )


@pytest.fixture(scope="session")
def s3_client(s3_server: LocalS3Server) -> Any:
    """A boto3 S3 client for the session server (path addressing, explicit checksums only)."""
    return s3_server.client()


@pytest.fixture
def s3_env(s3_server: LocalS3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point boto3's environment (AWS_ENDPOINT_URL_S3, keys, region) at the session server."""
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    env = s3_server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


class WarmBuckets:
    """New Object-Lock buckets, made in a background thread a few ahead of the tests.

    SeaweedFS makes the first writes to a new bucket wait while it gives the bucket a volume
    (0.2 s, about 1 s when a run writes several objects at once). Each bucket here is written
    to once outside any key a test uses, and that version deleted again (it has no retention):
    the test gets a bucket that is empty, versioned and locked as ``create_bucket`` made it,
    whose volume is already there.
    """

    AHEAD = 2

    def __init__(self, client: Any) -> None:
        self._client = client
        self._ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=self.AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="warm-buckets", daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        while not self._stop.is_set():
            try:
                item: str | BaseException = self._make()
            except BaseException as exc:  # handed to the test that waits for a bucket
                item = exc
            while not self._stop.is_set():
                try:
                    self._ready.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue

    def _make(self) -> str:
        name = unique_bucket_name("locked")
        ObjectStore(self._client, name).create_bucket()
        put = self._client.put_object(Bucket=name, Key="warm-up", Body=bytes(4096))
        self._client.delete_object(Bucket=name, Key="warm-up", VersionId=put["VersionId"])
        return name

    def take(self) -> str:
        """The name of the next bucket (waits for the thread if none is ready)."""
        item = self._ready.get(timeout=120)
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@pytest.fixture(scope="session")
def warm_buckets(s3_server: LocalS3Server) -> Iterator[WarmBuckets]:
    buckets = WarmBuckets(s3_server.client())
    try:
        yield buckets
    finally:
        buckets.stop()


@pytest.fixture
def locked_bucket(s3_client: Any, warm_buckets: WarmBuckets) -> ObjectStore:
    """An ObjectStore on a brand-new, empty bucket with Object Lock (no default retention).

    Buckets are not deleted afterwards: locked objects cannot be, and the server's temporary
    folder goes away at the end of the session.
    """
    return ObjectStore(s3_client, warm_buckets.take())
