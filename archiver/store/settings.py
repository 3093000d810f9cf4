"""S3 client setup and transfer tuning of the object store (the boto3 side of it)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import botocore.session
from botocore.config import Config
from botocore.exceptions import ProfileNotFound

from archiver.store.s3errors import profile_not_found
from archiver.store.types import DEFAULT_MULTIPART_THRESHOLD, MiB

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["MIN_PART_SIZE", "MiB", "StorageSettings", "make_s3_client"]

MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last


@dataclass(frozen=True)
class StorageSettings:
    """Transfer tuning.

    multipart_threshold: files larger than this are uploaded in parts (default 100 MiB, where
        AWS advises multipart); smaller ones in one streamed PUT (one request, not four).
    part_size: bytes per part, at least 5 MiB (S3's minimum; default 16 MiB). Parts are sent
        from the file: an upload holds one ``read_chunk`` in memory, whatever the part size.
    read_chunk: bytes per read from disk or from a GET stream (default 1 MiB).
    small_file_bytes: files up to this size (default 1 MiB: most letters, short recordings)
        are read into memory and sent in one lean PUT when the store has
        :class:`~archiver.store.smallputs.SmallPuts`, a third of boto3's CPU per object; an
        upload then holds the file, not one ``read_chunk``. Larger files keep boto3's
        streamed upload, whose ``Expect: 100-continue`` lets S3 refuse a taken key before the
        body travels; a file over ``multipart_threshold`` goes in parts whatever this says.
    """

    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD
    part_size: int = 16 * MiB
    read_chunk: int = 1 * MiB
    small_file_bytes: int = 1 * MiB

    def __post_init__(self) -> None:
        if self.part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least 5 MiB, got {self.part_size}")
        if self.read_chunk <= 0 or self.multipart_threshold <= 0:
            raise ValueError("read_chunk and multipart_threshold must be positive")
        if self.small_file_bytes < 0:
            raise ValueError("small_file_bytes must not be negative")


def make_s3_client(
    endpoint_url: str | None = None,
    *,
    checksum_when_required: bool = True,
    config_options: Mapping[str, Any] | None = None,
    profile: str | None = None,
    **kw: Any,
) -> S3Client:
    """A botocore S3 client with path addressing and standard retries.

    Endpoint, credentials, profile and region come from botocore's own environment
    (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_REGION...)
    unless ``endpoint_url`` or ``profile`` (a named AWS profile; unknown: :class:`ConfigError`)
    is given. With ``checksum_when_required`` (the default) botocore adds no checksum of its
    own: we send an explicit ``ChecksumSHA256`` on every upload.

    Uploads that carry ``x-amz-checksum-sha256`` (our PutObject and UploadPart) are signed
    with ``X-Amz-Content-SHA256: UNSIGNED-PAYLOAD`` (what botocore does for uploads over
    https): the signature covers that checksum header and the server checks the bytes against
    it, so the body is pinned all the same; signing the body too would make botocore read and
    hash it once more over plain http (a local S3), a second SHA-256 pass over every byte.
    Every other request with a body (completing a multipart upload, a retention, a hold, a
    bucket's configuration) keeps its body's SHA-256 in the signature.
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
        # botocore's session, not boto3's: the same environment, profiles and client, without
        # loading boto3 and s3transfer (a tenth of a second at every start of the CLI).
        session = botocore.session.Session(profile=profile)
        if session.get_config_variable("region") is None and "region_name" not in kw:
            kw["region_name"] = "us-east-1"
        client = session.create_client("s3", config=config, **kw)
        for operation in ("PutObject", "UploadPart"):
            client.meta.events.register(
                f"before-sign.s3.{operation}",
                _unsigned_when_checksummed,
                unique_id=f"archiver-unsigned-{operation}",
            )
        return cast("S3Client", client)
    except ProfileNotFound as exc:
        named_by_env = profile is None or profile == os.environ.get("AWS_PROFILE")
        raise profile_not_found(exc, "AWS_PROFILE" if named_by_env else "--profile") from None


def _unsigned_when_checksummed(request: Any, **_: Any) -> None:
    """Before SigV4 signs an upload that carries ``x-amz-checksum-sha256``: sign that header,
    not a second hash of the body (see :func:`make_s3_client`). The signer reads this from the
    request's own copy of the client config; nothing else changes."""
    config = request.context.get("client_config")
    if config is None or "x-amz-checksum-sha256" not in request.headers:
        return
    s3: Any = {**(getattr(config, "s3", None) or {}), "payload_signing_enabled": False}
    request.context["client_config"] = config.merge(Config(s3=s3))
