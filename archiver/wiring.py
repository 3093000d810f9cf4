"""Builds the objects of a run from configuration: the one place that wires collaborators.

The CLI, the demo and the integration tests all go through :func:`open_archiver`, so what the
tests prove is what users run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from archiver.archive.pipeline import Archiver, ArchiveSettings
from archiver.archive.results import ArchiveEvent
from archiver.catalog.db import Catalog
from archiver.catalog.recorder import CatalogRecorder
from archiver.getbill.client import GetbillClient
from archiver.getbill.settings import ApiSettings
from archiver.media.download import MediaDownloader
from archiver.media.transport import media_client
from archiver.media.types import DownloadSettings
from archiver.media.urls import check_media_url
from archiver.retention.policies import RetentionPolicy
from archiver.retention.policy_choice import PolicySelector
from archiver.store.objects import ObjectStore
from archiver.store.settings import make_s3_client

from .config import ArchiverConfig
from .errors import ConfigError


def open_store(bucket: str | None, s3_client: Any = None) -> ObjectStore:
    """An :class:`ObjectStore` on ``bucket`` (boto3's own env gives endpoint and credentials)."""
    if not bucket:
        raise ConfigError("no bucket: pass --bucket NAME or set ARCHIVER_BUCKET")
    return ObjectStore(s3_client if s3_client is not None else make_s3_client(), bucket)


def configured_policy(config: ArchiverConfig) -> RetentionPolicy:
    """The run's policy: by file path, or by name in the configuration's policy registry."""
    return config.policy_registry().load(config.policy)


def render_for_archive(
    manifest: dict[str, Any],
    manifest_key: str,
    manifest_sha256: str,
    records: dict[str, dict[str, Any]],
    debt: dict[str, Any] | None,
    store: ObjectStore,
) -> tuple[bytes, str]:
    """Render a dossier at archive time from in-memory data plus the stored hold events up to
    the manifest's time: exactly what :func:`rerender_stored` reads back later."""
    from .dossier import RENDERER_VERSION, DossierInput, load_events, render_dossier_bytes

    events = load_events(store, manifest["debt_id"], manifest["created_at"])
    pdf = render_dossier_bytes(
        DossierInput(
            manifest=manifest,
            manifest_key=manifest_key,
            manifest_sha256=manifest_sha256,
            records=records,
            debt=debt,
            events=events,
        )
    )
    return pdf, RENDERER_VERSION


def rerender_stored(
    manifest: dict[str, Any], manifest_key: str, manifest_sha256: str, store: ObjectStore
) -> tuple[bytes, str]:
    """Re-render the dossier of a stored manifest from S3 alone: ``(pdf, renderer version)``."""
    from .dossier import RENDERER_VERSION, load_dossier_input, render_dossier_bytes

    inp = load_dossier_input(store, manifest["debt_id"], manifest["sequence"])
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
    policy_asked: bool = False,
    change_reason: str | None = None,
    actor: str | None = None,
) -> Iterator[ArchiverSession]:
    """Everything a run needs, closed on exit.

    ``config.policy`` applies to debts archived for the first time; a debt archived before
    keeps its manifest's policy (:mod:`archiver.retention.policy_choice`). ``policy_asked``:
    the operator asked for ``config.policy`` by name (``--policy``), so a debt under another
    one is refused unless ``change_reason`` (``--change-policy --reason``) says why it moves.
    """
    policy = configured_policy(config)
    selector = PolicySelector(
        policy,
        config.policy_registry(),
        explicit=policy_asked,
        change_reason=change_reason,
        actor=actor,
    )
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
            policy=selector,
            settings=ArchiveSettings(
                concurrency=config.concurrency,
                dry_run=dry_run,
                render_dossier=render_dossiers,
                api_base_url=api_settings.base_url,
            ),
            on_event=on_event,
            subscribers=[CatalogRecorder(catalog)],
            render_dossier=render_for_archive,
            check_media=lambda ref: check_media_url(ref.url, media_settings),
        )
        yield ArchiverSession(archiver, store, catalog, policy)
