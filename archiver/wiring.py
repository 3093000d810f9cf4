"""Builds the objects of a run from configuration: the one place that wires collaborators.

The CLI, the demo and the integration tests all go through :func:`open_archiver`, so what the
tests prove is what users run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import httpx

from archiver.archive.finish import DossierRequest, RenderedDossier
from archiver.archive.pipeline import Archiver, ArchiveSettings
from archiver.archive.results import ArchiveEvent
from archiver.catalog.db import Catalog
from archiver.catalog.recorder import CatalogRecorder
from archiver.common.redact import strip_query
from archiver.getbill.client import GetbillClient
from archiver.getbill.settings import ApiSettings
from archiver.media.download import MediaDownloader
from archiver.media.transport import media_client
from archiver.media.types import DownloadSettings
from archiver.retention.policies import RetentionPolicy
from archiver.store import keys
from archiver.store.objects import ObjectStore
from archiver.store.settings import make_s3_client

from .config import ArchiverConfig
from .errors import ConfigError

if TYPE_CHECKING:  # the dossier package (reportlab) loads only when a dossier is rendered
    from .dossier import DossierInput


def open_store(bucket: str | None, s3_client: Any = None) -> ObjectStore:
    """An :class:`ObjectStore` on ``bucket`` (boto3's own env gives endpoint and credentials)."""
    if not bucket:
        raise ConfigError("no bucket: pass --bucket NAME or set ARCHIVER_BUCKET")
    return ObjectStore(s3_client if s3_client is not None else make_s3_client(), bucket)


def configured_policy(config: ArchiverConfig) -> RetentionPolicy:
    """The run's policy: by file path, or by name in the configuration's policy registry."""
    return config.policy_registry().load(config.policy)


def dossier_location(store: ObjectStore) -> dict[str, str]:
    """Where the archive is, as a dossier prints it in "How to verify": the bucket and the S3
    endpoint URL of ``store`` (without credentials or query)."""
    where = {"bucket": store.bucket}
    endpoint = getattr(getattr(store.client, "meta", None), "endpoint_url", None)
    if isinstance(endpoint, str) and endpoint:
        where["endpoint"] = strip_query(endpoint)
    return where


def render_for_archive(request: DossierRequest) -> RenderedDossier:
    """Render a dossier at archive time from in-memory data plus the stored hold events up to
    the manifest's time: exactly what :func:`rerender_stored` reads back later. The bucket and
    endpoint it prints are this store's (or, to render a stored dossier again, those its S3
    metadata names) and are returned as metadata to store with it."""
    from .dossier import RENDERER_VERSION, DossierInput, load_events, render_dossier_bytes

    manifest = request.manifest
    if request.stored_metadata is None:
        where = dossier_location(request.store)
    else:
        where = {k: v for k, v in request.stored_metadata.items() if k in ("bucket", "endpoint")}
    events = load_events(request.store, manifest["debt_id"], manifest["created_at"])
    pdf = render_dossier_bytes(
        DossierInput(
            manifest=manifest,
            manifest_key=request.manifest_key,
            manifest_sha256=request.manifest_sha256,
            records=request.records,
            debt=request.debt,
            events=events,
            bucket=where.get("bucket"),
            endpoint=where.get("endpoint"),
        )
    )
    return RenderedDossier(pdf, RENDERER_VERSION, where)


def stored_dossier_input(
    store: ObjectStore, debt_id: str, sequence: int | None = None
) -> DossierInput:
    """What the dossier of manifest ``sequence`` (the latest when None) is rendered from, read
    from S3 alone (see :func:`archiver.dossier.load_dossier_input`), with the bucket and
    endpoint the stored dossier was rendered with, if one is stored: rendering it gives the
    stored bytes. Without them (no dossier stored, or one stored before dossiers named
    their bucket) the verify steps say ``$BUCKET``."""
    from .dossier import load_dossier_input

    inp = load_dossier_input(store, debt_id, sequence)
    stored = store.head(keys.dossier_key(debt_id, inp.manifest["sequence"]))
    if stored is None:
        return inp
    where = stored.metadata
    return replace(inp, bucket=where.get("bucket"), endpoint=where.get("endpoint"))


def rerender_stored(
    manifest: dict[str, Any], manifest_key: str, manifest_sha256: str, store: ObjectStore
) -> tuple[bytes, str]:
    """Re-render the dossier of a stored manifest from S3 alone: ``(pdf, renderer version)``."""
    from .dossier import RENDERER_VERSION, render_dossier_bytes

    inp = stored_dossier_input(store, manifest["debt_id"], manifest["sequence"])
    return render_dossier_bytes(inp), RENDERER_VERSION


@dataclass
class ArchiverSession:
    archiver: Archiver
    store: ObjectStore
    catalog: Catalog
    policy: RetentionPolicy


@contextmanager
def open_archiver(
    config: ArchiverConfig,
    api_settings: ApiSettings,
    *,
    s3_client: Any = None,
    http: httpx.Client | None = None,
    media_http: httpx.Client | None = None,
    dry_run: bool = False,
    render_dossiers: bool = True,
    on_event: Callable[[ArchiveEvent], None] | None = None,
    on_api_event: Callable[[Any], None] | None = None,
) -> Iterator[ArchiverSession]:
    """Everything a run needs, closed on exit."""
    policy = configured_policy(config)
    store = open_store(config.bucket, s3_client)
    with ExitStack() as stack:
        api = stack.enter_context(GetbillClient(api_settings, http=http, on_event=on_api_event))
        media_settings = DownloadSettings(
            allowed_hosts=tuple(config.media_hosts), max_media_bytes=config.max_media_bytes
        )
        if media_http is None:
            media_http = stack.enter_context(media_client(media_settings))
        downloader = MediaDownloader(media_http, media_settings)
        catalog = Catalog.open(config.catalog)
        archiver = Archiver(
            api=api,
            downloader=downloader,
            store=store,
            policy=policy,
            settings=ArchiveSettings(
                concurrency=config.concurrency,
                dry_run=dry_run,
                render_dossier=render_dossiers,
                api_base_url=api_settings.base_url,
            ),
            on_event=on_event,
            subscribers=[CatalogRecorder(catalog)],
            render_dossier=render_for_archive,
        )
        yield ArchiverSession(archiver, store, catalog, policy)
