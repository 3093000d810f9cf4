"""S3 client setup and transfer tuning of the object store (the boto3 side of it)."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import ProfileNotFound

from archiver.store.s3errors import profile_not_found

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["MIN_PART_SIZE", "MiB", "StorageSettings", "make_s3_client", "sign_with_known_sha256"]

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last


@dataclass(frozen=True)
class StorageSettings:
    """Transfer tuning.

    multipart_threshold: files larger than this are uploaded in parts (default 16 MiB).
    part_size: bytes per part, at least 5 MiB (S3's minimum); also the most memory one upload
        holds at a time (default 16 MiB).
    read_chunk: bytes per read from disk or from a GET stream (default 1 MiB).
    """

    multipart_threshold: int = 16 * MiB
    part_size: int = 16 * MiB
    read_chunk: int = 1 * MiB

    def __post_init__(self) -> None:
        if self.part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least 5 MiB, got {self.part_size}")
        if self.read_chunk <= 0 or self.multipart_threshold <= 0:
            raise ValueError("read_chunk and multipart_threshold must be positive")


def make_s3_client(
    endpoint_url: str | None = None,
    *,
    checksum_when_required: bool = True,
    config_options: Mapping[str, Any] | None = None,
    profile: str | None = None,
    **kw: Any,
) -> S3Client:
    """A boto3 S3 client with path addressing and standard retries.

    Endpoint, credentials, profile and region come from boto3's own environment
    (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_REGION...)
    unless ``endpoint_url`` or ``profile`` (a named AWS profile; unknown: :class:`ConfigError`)
    is given. With ``checksum_when_required`` (the default) botocore adds no checksum of its
    own: we send an explicit ``ChecksumSHA256`` on every upload.
    ``config_options`` go to :class:`botocore.config.Config` over these defaults (e.g.
    ``connect_timeout``, ``retries``). Extra keyword arguments go to ``Session.client`` (e.g.
    ``region_name``, credentials). An ``AWS_PROFILE`` that no config file defines raises
    :class:`~archiver.errors.ConfigError` naming the profile and the files.
    """
    mode: Literal["when_supported", "when_required"] = (
        "when_required" if checksum_when_required else "when_supported"
    )
    options: dict[str, Any] = {
        "s3": {"addressing_style": "path"},
        "retries": {"mode": "standard"},
        "request_checksum_calculation": mode,
        "response_checksum_validation": mode,
        **(config_options or {}),
    }
    config = Config(**options)
    if endpoint_url is not None:
        kw["endpoint_url"] = endpoint_url
    try:
        session = boto3.session.Session(profile_name=profile)
        if session.region_name is None and "region_name" not in kw:
            kw["region_name"] = "us-east-1"
        return session.client("s3", config=config, **kw)
    except ProfileNotFound as exc:
        named_by_env = profile is None or profile == os.environ.get("AWS_PROFILE")
        raise profile_not_found(exc, "AWS_PROFILE" if named_by_env else "--profile") from None


def _payload_sha256_from_checksum(request: Any, **_: Any) -> None:
    """Before SigV4 signs a PUT: the body's SHA-256 is already known (we send it as
    ``x-amz-checksum-sha256``), so give it to the signer as ``X-Amz-Content-SHA256``.

    Over plain http botocore would otherwise read and hash the whole body once more just to
    sign it; with the header the signature covers the same hash and S3 checks both."""
    checksum = request.headers.get("x-amz-checksum-sha256")
    if checksum and "X-Amz-Content-SHA256" not in request.headers:
        request.headers["X-Amz-Content-SHA256"] = base64.b64decode(checksum).hex()


def sign_with_known_sha256(client: Any) -> None:
    """Register :func:`_payload_sha256_from_checksum` on ``client`` (once per client)."""
    events = client.meta.events
    for operation in ("PutObject", "UploadPart"):
        # unique_id: registering twice (several stores on one client) keeps one handler.
        events.register(
            f"before-sign.s3.{operation}",
            _payload_sha256_from_checksum,
            unique_id=f"archiver-known-sha256-{operation}",
        )
