"""Run configuration: one frozen dataclass with documented defaults.

Only the CLI reads flags and environment variables into it (``ARCHIVER_*``, ``GETBILL_*``);
S3 endpoint and credentials stay with boto3's own mechanisms (``AWS_ENDPOINT_URL_S3``,
``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from archiver.errors import ConfigError
from archiver.media.types import DEFAULT_MAX_MEDIA_BYTES
from archiver.retention.policies import DEFAULT_POLICY
from archiver.retention.registry import PolicyRegistry

DEFAULT_MEDIA_HOSTS = ("*.amazonaws.com", "*.getbill.io")


@dataclass(frozen=True)
class ArchiverConfig:
    """Settings of the archiver.

    bucket: S3 bucket with Object Lock (``ARCHIVER_BUCKET``).
    catalog: SQLite catalog file (``ARCHIVER_CATALOG``, default ``archiver-catalog.db``).
    media_hosts: allowlist of media hosts, fnmatch wildcards (``ARCHIVER_MEDIA_HOSTS``).
    policy: retention policy name or file (``ARCHIVER_POLICY``, default ``default``).
    policy_dirs: folders searched for policies by name before the shipped ones
        (``ARCHIVER_POLICY_DIR``, ``os.pathsep``-separated); see :meth:`policy_registry`.
    concurrency: media downloads/uploads in flight at once.
    max_media_bytes: the largest media file downloaded, in bytes (``ARCHIVER_MAX_MEDIA_BYTES``,
        default 4 GiB); a larger one is refused and reported as a problem of its debt.
    """

    bucket: str | None = None
    catalog: Path = Path("archiver-catalog.db")
    media_hosts: tuple[str, ...] = DEFAULT_MEDIA_HOSTS
    policy: str = DEFAULT_POLICY
    policy_dirs: tuple[Path, ...] = ()
    concurrency: int = 4
    max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ArchiverConfig:
        """The configuration the ``ARCHIVER_*`` variables of ``env`` give (defaults for the
        others)."""
        hosts = env.get("ARCHIVER_MEDIA_HOSTS")
        return cls(
            bucket=env.get("ARCHIVER_BUCKET") or None,
            catalog=Path(env.get("ARCHIVER_CATALOG") or "archiver-catalog.db"),
            media_hosts=tuple(h.strip() for h in hosts.split(",") if h.strip())
            if hosts
            else DEFAULT_MEDIA_HOSTS,
            policy=env.get("ARCHIVER_POLICY") or DEFAULT_POLICY,
            policy_dirs=tuple(
                Path(d) for d in env.get("ARCHIVER_POLICY_DIR", "").split(os.pathsep) if d
            ),
            max_media_bytes=_positive_int(env, "ARCHIVER_MAX_MEDIA_BYTES", DEFAULT_MAX_MEDIA_BYTES),
        )

    def policy_registry(self) -> PolicyRegistry:
        """Where policies are found by name: :attr:`policy_dirs`, then the shipped ones."""
        return PolicyRegistry.with_user_dirs(self.policy_dirs)


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = (env.get(name) or "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"{name} must be a whole number of bytes (at least 1), got {value!r:.30}")
    return number
