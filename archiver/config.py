"""Run configuration: one frozen dataclass with documented defaults, and the config file.

Only the CLI reads flags, environment variables (``ARCHIVER_*``, ``GETBILL_*``, the AWS ones)
and the config file into it. The order is: a flag, then the environment, then the config
file's section of the profile in effect, then the default. The file holds the variables people
would otherwise export in long environment blocks (:data:`FILE_KEYS`); :func:`layered_env`
folds it under the environment, so everything below reads one mapping.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archiver.common.redact import strip_query
from archiver.errors import ConfigError
from archiver.media.types import DEFAULT_MAX_MEDIA_BYTES
from archiver.retention.policies import DEFAULT_POLICY
from archiver.store.types import DEFAULT_MULTIPART_THRESHOLD

if TYPE_CHECKING:  # the registry (and its policy files) load when a command needs them
    from archiver.retention.registry import PolicyRegistry

DEFAULT_MEDIA_HOSTS = ("*.amazonaws.com", "*.getbill.io")
APP_DIR = "getbill-archiver"
DEFAULT_PROFILE = "default"

FILE_KEYS: dict[str, tuple[str, ...]] = {
    "bucket": ("ARCHIVER_BUCKET",),
    "catalog": ("ARCHIVER_CATALOG",),
    "policy": ("ARCHIVER_POLICY",),
    "policy_dir": ("ARCHIVER_POLICY_DIR",),
    "media_hosts": ("ARCHIVER_MEDIA_HOSTS",),
    "max_media_bytes": ("ARCHIVER_MAX_MEDIA_BYTES",),
    "multipart_threshold": ("ARCHIVER_MULTIPART_THRESHOLD",),
    "tsa_url": ("ARCHIVER_TSA_URL",),
    "tsa_ca": ("ARCHIVER_TSA_CA",),
    "organization": ("ARCHIVER_ORGANIZATION",),
    "endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "getbill_api_url": ("GETBILL_API_URL",),
    "getbill_client_id": ("GETBILL_CLIENT_ID",),
    "getbill_client_secret": ("GETBILL_CLIENT_SECRET",),
    "getbill_token": ("GETBILL_TOKEN",),
    "getbill_scope": ("GETBILL_SCOPE",),
    "getbill_max_rate_limit_wait": ("GETBILL_MAX_RATE_LIMIT_WAIT",),
}
"""Keys of a config file section and the variables each one stands for (any of them set in
the environment wins over the file)."""

SECRET_FILE_KEYS = ("getbill_client_secret", "getbill_token")
# Lists in the file become these separators in the variable.
_LIST_SEPARATORS = {"media_hosts": ",", "policy_dir": os.pathsep, "tsa_url": ","}


def _home_dir(env: Mapping[str, str], xdg_name: str, fallback: str) -> Path:
    """``$XDG_*_HOME/getbill-archiver`` (an absolute value only, as the XDG spec says), else
    ``~/<fallback>/getbill-archiver``."""
    value = env.get(xdg_name, "")
    if value and Path(value).is_absolute():
        return Path(value) / APP_DIR
    home = env.get("HOME") or str(Path.home())
    return Path(home) / fallback / APP_DIR


def data_dir(env: Mapping[str, str]) -> Path:
    """Where catalogs live by default: ``$XDG_DATA_HOME/getbill-archiver``."""
    return _home_dir(env, "XDG_DATA_HOME", ".local/share")


def config_file_path(env: Mapping[str, str]) -> Path:
    """The config file: ``$ARCHIVER_CONFIG``, else
    ``$XDG_CONFIG_HOME/getbill-archiver/config.toml``."""
    given = env.get("ARCHIVER_CONFIG")
    if given:
        return Path(given)
    return _home_dir(env, "XDG_CONFIG_HOME", ".config") / "config.toml"


def read_config_file(path: Path, profile: str, *, required: bool = False) -> dict[str, str]:
    """The ``[profile]`` section of the TOML file at ``path``, as variable names and values.

    A missing file gives nothing (a :class:`ConfigError` if ``required``); so does a missing
    section. Unknown keys are refused (a typo would otherwise be silently ignored), and a
    file holding a secret must not be readable by other users.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} does not exist") from None
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    section = document.get(profile)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: [{profile}] must be a table of settings")
    unknown = sorted(set(section) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)} in [{profile}]; "
            f"known: {', '.join(FILE_KEYS)}"
        )
    if any(k in section for k in SECRET_FILE_KEYS) and path.stat().st_mode & (
        stat.S_IRWXG | stat.S_IRWXO
    ):
        raise ConfigError(
            f"config file {path} holds a secret but other users may read it: chmod 600 {path}"
        )
    return {FILE_KEYS[key][0]: _as_text(key, value, path) for key, value in section.items()}


def _as_text(key: str, value: Any, path: Path) -> str:
    if isinstance(value, list) and key in _LIST_SEPARATORS:
        return _LIST_SEPARATORS[key].join(str(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"config file {path}: {key} must be a string or a number")
    return str(value)


def layered_env(env: Mapping[str, str], file_values: Mapping[str, str]) -> dict[str, str]:
    """``env`` over the config file: a file setting counts only when the environment sets
    none of the variables it stands for (``endpoint_url`` yields to ``AWS_ENDPOINT_URL`` too)."""
    names = {canonical: group for group in FILE_KEYS.values() for canonical in group[:1]}
    merged = dict(env)
    for name, value in file_values.items():
        if not any(env.get(n) for n in names.get(name, (name,))):
            merged[name] = value
    return merged


@dataclass(frozen=True)
class ArchiverConfig:
    """Settings of the archiver.

    bucket: S3 bucket with Object Lock (``ARCHIVER_BUCKET``).
    catalog: SQLite catalog file (``ARCHIVER_CATALOG``); None: the bucket's own catalog
        under :attr:`data_dir` (see :meth:`catalog_path`).
    data_dir: where per-bucket catalogs live (``$XDG_DATA_HOME/getbill-archiver``, else
        ``~/.local/share/getbill-archiver``).
    media_hosts: allowlist of media hosts, fnmatch wildcards (``ARCHIVER_MEDIA_HOSTS``).
    policy: retention policy name or file (``ARCHIVER_POLICY``, default ``default``).
    policy_dirs: folders searched for policies by name before the shipped ones
        (``ARCHIVER_POLICY_DIR``, ``os.pathsep``-separated); see :meth:`policy_registry`.
    concurrency: media downloads/uploads in flight at once.
    max_media_bytes: the largest media file downloaded, in bytes (``ARCHIVER_MAX_MEDIA_BYTES``,
        default 4 GiB); a larger one is refused and reported as a problem of its debt.
    multipart_threshold: files larger than this (bytes) go to S3 in parts of 16 MiB, smaller
        ones in one PUT (``ARCHIVER_MULTIPART_THRESHOLD``, default 100 MiB).
    profile: AWS named profile for S3 credentials (``AWS_PROFILE``); None: boto3's default.
    endpoint_url: S3 endpoint (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``); None: AWS.
    region: S3 region (``AWS_REGION``, ``AWS_DEFAULT_REGION``); None: boto3's own lookup.
    tsa_urls: RFC 3161 time-stamping authorities asked, in order, for a token over each new
        manifest (``ARCHIVER_TSA_URL``, comma-separated); empty: no timestamps.
    tsa_ca: PEM file of the trusted TSA root certificates (``ARCHIVER_TSA_CA``): tokens must
        chain up to one of them (see :meth:`tsa_ca_pem`); None: signatures are not checked.
    organization: who hands evidence packs over, their ``Source-Organization``
        (``ARCHIVER_ORGANIZATION``); None: ``archiver pack`` refuses to make one.
    """

    bucket: str | None = None
    catalog: Path | None = None
    data_dir: Path = field(default_factory=lambda: data_dir(os.environ))
    media_hosts: tuple[str, ...] = DEFAULT_MEDIA_HOSTS
    policy: str = DEFAULT_POLICY
    policy_dirs: tuple[Path, ...] = ()
    concurrency: int = 4
    max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD
    profile: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    tsa_urls: tuple[str, ...] = ()
    tsa_ca: Path | None = None
    organization: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ArchiverConfig:
        """The configuration the variables of ``env`` give (defaults for the others)."""
        hosts = env.get("ARCHIVER_MEDIA_HOSTS")
        catalog = env.get("ARCHIVER_CATALOG")
        return cls(
            bucket=env.get("ARCHIVER_BUCKET") or None,
            catalog=Path(catalog) if catalog else None,
            data_dir=data_dir(env),
            media_hosts=tuple(h.strip() for h in hosts.split(",") if h.strip())
            if hosts
            else DEFAULT_MEDIA_HOSTS,
            policy=env.get("ARCHIVER_POLICY") or DEFAULT_POLICY,
            policy_dirs=tuple(
                Path(d) for d in env.get("ARCHIVER_POLICY_DIR", "").split(os.pathsep) if d
            ),
            max_media_bytes=_positive_int(env, "ARCHIVER_MAX_MEDIA_BYTES", DEFAULT_MAX_MEDIA_BYTES),
            multipart_threshold=_positive_int(
                env, "ARCHIVER_MULTIPART_THRESHOLD", DEFAULT_MULTIPART_THRESHOLD
            ),
            profile=env.get("AWS_PROFILE") or None,
            endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            tsa_urls=_tsa_urls(env.get("ARCHIVER_TSA_URL", "")),
            tsa_ca=Path(env["ARCHIVER_TSA_CA"]) if env.get("ARCHIVER_TSA_CA") else None,
            organization=(env.get("ARCHIVER_ORGANIZATION") or "").strip() or None,
        )

    def catalog_path(self) -> Path:
        """:attr:`catalog`, else the bucket's catalog ``<data_dir>/<bucket>.db``."""
        if self.catalog is not None:
            return self.catalog
        if not self.bucket:
            raise ConfigError(
                "no catalog: pass --catalog FILE, or a bucket (--bucket NAME or "
                f"ARCHIVER_BUCKET) whose catalog is {self.data_dir}/BUCKET.db"
            )
        if "/" in self.bucket or self.bucket.startswith(".") or os.sep in self.bucket:
            raise ConfigError(f"not a bucket name: {self.bucket!r:.80}")
        return self.data_dir / f"{self.bucket}.db"

    def tsa_ca_pem(self) -> bytes | None:
        """The bytes of :attr:`tsa_ca` (None when not set); :class:`ConfigError` when the file
        cannot be read."""
        if self.tsa_ca is None:
            return None
        try:
            return self.tsa_ca.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the trusted TSA certificates {self.tsa_ca} (ARCHIVER_TSA_CA): "
                f"{exc.strerror}"
            ) from None

    def policy_registry(self) -> PolicyRegistry:
        """Where policies are found by name: :attr:`policy_dirs`, then the shipped ones."""
        from archiver.retention.registry import PolicyRegistry

        return PolicyRegistry.with_user_dirs(self.policy_dirs)


def _tsa_urls(value: str) -> tuple[str, ...]:
    """``ARCHIVER_TSA_URL``: comma-separated http(s) URLs, in the order they are asked."""
    urls = tuple(u.strip() for u in value.split(",") if u.strip())
    for url in urls:
        if not url.lower().startswith(("http://", "https://")):
            raise ConfigError(
                f"ARCHIVER_TSA_URL must list http:// or https:// URLs, got {strip_query(url)!r:.80}"
            )
    return urls


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
