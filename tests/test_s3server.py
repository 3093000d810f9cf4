"""The local SeaweedFS helper: loopback only, credentials enforced, distinct ports, restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from archiver.devkit.s3server import GRPC_PORT_OFFSET, LocalS3Server, find_weed_binary

pytestmark = pytest.mark.integration


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) listening on ``port``."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                found.add(address)
    return found


def test_weed_binary_is_found() -> None:
    assert find_weed_binary().name == "weed"


def test_server_answers_on_loopback_only(s3_server: LocalS3Server, s3_client: Any) -> None:
    assert s3_server.endpoint_url.startswith("http://127.0.0.1:")
    assert isinstance(s3_client.list_buckets()["Buckets"], list)
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to inspect listening sockets")
    for name, port in s3_server.ports.items():
        for p in (port, port + GRPC_PORT_OFFSET):
            addresses = _listening_addresses(p)
            # 0100007F is 127.0.0.1 in /proc's little-endian hex.
            assert addresses <= {"0100007F"}, f"{name} port {p} listens on {addresses}"
    assert _listening_addresses(s3_server.ports["s3"]) == {"0100007F"}
    assert s3_server.start_seconds is not None and s3_server.start_seconds < 30


def test_server_requires_its_credentials(s3_server: LocalS3Server) -> None:
    intruder = boto3.session.Session().client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key="not-the-secret",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as info:
        intruder.list_buckets()
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_env_points_subprocesses_at_the_server(s3_server: LocalS3Server) -> None:
    env = s3_server.env()
    assert env["AWS_ENDPOINT_URL_S3"] == s3_server.endpoint_url
    assert env["AWS_ACCESS_KEY_ID"] == s3_server.access_key
    assert env["AWS_SECRET_ACCESS_KEY"] == s3_server.secret_key
    assert env["AWS_REGION"] == "us-east-1"


def test_second_server_with_given_folder_keeps_data_across_restart(
    s3_server: LocalS3Server, tmp_path: Path
) -> None:
    data_dir = tmp_path / "s3data"
    second = LocalS3Server(data_dir)
    with second:
        assert second.ports["s3"] != s3_server.ports["s3"]
        assert not set(second.ports.values()) & set(s3_server.ports.values())
        client = second.client()
        client.create_bucket(Bucket="restart-check")
        client.put_object(Bucket="restart-check", Key="a.txt", Body=b"survives")
        # The bucket exists only on the second server.
        names = {b["Name"] for b in s3_server.client().list_buckets()["Buckets"]}
        assert "restart-check" not in names
    assert second.stop_seconds is not None and second.stop_seconds < 15
    assert not second.running
    assert data_dir.is_dir(), "a folder given by the caller is kept"

    # Same folder, new credentials and ports: the data is still there.
    with LocalS3Server(data_dir) as again:
        body = again.client().get_object(Bucket="restart-check", Key="a.txt")["Body"].read()
        assert body == b"survives"


def test_temporary_folder_is_removed_at_stop() -> None:
    server = LocalS3Server()
    assert server.pid is None
    server.start()
    try:
        folder = server.data_dir
        assert folder is not None and (folder / "weed.log").exists()
        # The benchmarks count the server's CPU time through its process id.
        pid = server.pid
        assert pid is not None and "weed" in Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    finally:
        server.stop()
    assert not folder.exists()
    assert server.pid is None
    server.stop()  # stopping twice is harmless
