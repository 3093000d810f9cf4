"""Builds the objects of a run from configuration: the one place that wires collaborators.

The CLI, the demo and the integration tests all go through :func:`open_archiver`, so what the
tests prove is what users run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archiver.archive.finish import DossierRequest, RenderedDossier
from archiver.archive.pipeline import Archiver, ArchiveSettings
from archiver.archive.plan import DebtRecordRule, FollowupSource
from archiver.archive.results import ArchiveEvent
from archiver.audit.timestamps import TimestampTrust
from archiver.catalog.db import Catalog
from archiver.catalog.recorder import CatalogRecorder
from archiver.common.redact import strip_query
from archiver.getbill.client import GetbillClient
from archiver.getbill.settings import ApiSettings
from archiver.media.download import MediaDownloader
from archiver.media.transport import media_client
from archiver.media.types import DownloadSettings
from archiver.media.urls import check_media_url
from archiver.retention.policies import RetentionPolicy
from archiver.retention.policy_choice import PolicySelector
from archiver.store import keys
from archiver.store.objects import ObjectStore
from archiver.store.settings import StorageSettings, make_s3_client
from archiver.store.smallputs import small_puts
from archiver.sync.engine import ArchiverFactory, Syncer, SyncEvent, SyncSettings

if TYPE_CHECKING:
    import httpx

    from archiver.timestamps.client import Timestamper

from archiver.config import ArchiverConfig
from archiver.errors import ConfigError

# The dossier package (reportlab) loads only when a dossier is rendered, the listener's HTTP
# stack (starlette, uvicorn) only when a listener is opened.
if TYPE_CHECKING:
    from archiver.dossier import DossierInput
    from archiver.listen.server import Listener
    from archiver.listen.settings import ListenSettings
    from archiver.listen.worker import ArchiveTools


def open_store(
    bucket: str | None, s3_client: Any = None, settings: StorageSettings | None = None
) -> ObjectStore:
    """An :class:`ObjectStore` on ``bucket`` (boto3's own env gives endpoint and credentials)."""
    if not bucket:
        raise ConfigError("no bucket: pass --bucket NAME or set ARCHIVER_BUCKET")
    client = s3_client if s3_client is not None else make_s3_client()
    store = ObjectStore(client, bucket, settings)
    store.small = small_puts(store)
    return store


def storage_settings(config: ArchiverConfig) -> StorageSettings:
    """The transfer tuning ``config`` sets."""
    return StorageSettings(multipart_threshold=config.multipart_threshold)


def open_configured_store(config: ArchiverConfig, **client_options: Any) -> ObjectStore:
    """An :class:`ObjectStore` on the configured bucket, reached with the configured profile,
    endpoint and region (boto3's own lookup for what is not set). ``client_options`` go to
    botocore's ``Config`` (e.g. ``max_pool_connections``)."""
    if not config.bucket:
        return open_store(None)
    kw: dict[str, Any] = {"region_name": config.region} if config.region else {}
    client = make_s3_client(
        config.endpoint_url, profile=config.profile, config_options=client_options or None, **kw
    )
    return open_store(config.bucket, client, storage_settings(config))


def _run_store(config: ArchiverConfig, s3_client: Any = None, **client_options: Any) -> ObjectStore:
    """The store of a run: on ``s3_client`` when given (tests, the demo), else the
    configured endpoint, profile and region (``client_options``: boto3 client settings)."""
    if s3_client is not None:
        return open_store(config.bucket, s3_client, storage_settings(config))
    return open_configured_store(config, **client_options)


def _default_catalog_folder(config: ArchiverConfig) -> None:
    """Create the folder of the default catalog (never a folder the user named)."""
    if config.catalog is None:
        path = config.catalog_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {path.parent}: {exc.strerror}") from None


def open_catalog(
    config: ArchiverConfig,
    *,
    write: bool,
    switch_bucket: bool = False,
    replace_corrupt: bool = False,
) -> Catalog:
    """The configured catalog (:meth:`ArchiverConfig.catalog_path`).

    Only a command that writes (``write``) creates a missing catalog, and makes it the
    catalog of the configured bucket; a catalog of another bucket is refused unless
    ``switch_bucket``. A reading command gets a :class:`ConfigError` for a missing file.
    ``replace_corrupt`` (a rebuild from S3 follows) keeps a corrupt file aside.
    """
    path = config.catalog_path()
    if not write and not path.exists():
        raise ConfigError(
            f"no catalog at {path}: `archiver reindex` builds it from the bucket",
            catalog=str(path),
        )
    if write:
        _default_catalog_folder(config)
    catalog = Catalog.open(path, replace_corrupt=replace_corrupt)
    if write and config.bucket:
        catalog.claim_bucket(config.bucket, switch=switch_bucket)
    elif config.bucket and catalog.bucket() not in (None, config.bucket):
        raise ConfigError(
            f"the catalog {path} indexes bucket {catalog.bucket()!r}, not {config.bucket!r}",
            catalog=str(path),
        )
    return catalog


def open_recorder(config: ArchiverConfig, *, dry_run: bool = False) -> CatalogRecorder:
    """The catalog recorder of an archive run: a throwaway in-memory catalog for a dry run
    (which writes nothing), else the configured catalog, made the bucket's own. A corrupt
    catalog gives a recorder without one (one warning; the run goes on)."""
    if dry_run:
        return CatalogRecorder(Catalog.open(":memory:"))
    _default_catalog_folder(config)
    recorder = CatalogRecorder.open(config.catalog_path())
    if config.bucket:
        recorder.claim_bucket(config.bucket)
    return recorder


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


TIMESTAMPS_METADATA = "timestamps"
"""The dossier's S3 metadata naming the manifests whose tokens it shows (``1-3,5``): a token
stored later (its TSA was down) is not in a re-render of a dossier rendered before it."""


class DossierStack:
    """The dossier renderer (reportlab, pikepdf, fonts: about half a second of CPU to load)
    loaded by a background thread once the run's first downloads start (:meth:`prepare`),
    rather than after its last one; rendering waits for that load, then renders as
    :func:`render_for_archive` does.

    Not as the run starts: the import holds the GIL most of the time, and the run's first
    steps (token, listing, S3 checks, planning) are short Python steps between requests that
    each wait for it: they took 0.45 s instead of 0.1 s, the first download started that much
    later. During the downloads, threads mostly wait on sockets and hash in C. (On the 2-core
    benchmark, where the local S3 server keeps both cores busy, the run's total time is the
    same either way; with a remote S3 and API, the load is then free.)"""

    def __init__(self) -> None:
        # Not a daemon: a run that ends at once waits for the import rather than stopping
        # the interpreter in the middle of it.
        self._loaded = threading.Thread(target=_load_dossier_stack, name="dossier-stack")
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Start loading the stack in the background (once; later calls do nothing)."""
        with self._lock:
            if self._loaded.ident is None:  # not started yet
                self._loaded.start()

    def __call__(self, request: DossierRequest) -> RenderedDossier:
        self.prepare()
        self._loaded.join()
        return render_for_archive(request)


def _load_dossier_stack() -> None:
    # An import that fails here fails again, with its traceback, where the dossier renders.
    with suppress(Exception):
        from archiver.dossier.fonts import load_fonts

        load_fonts()


def render_for_archive(request: DossierRequest) -> RenderedDossier:
    """Render a dossier at archive time from in-memory data plus the stored events the manifest
    accounts for and the manifests' stored tokens: exactly what :func:`rerender_stored` reads
    back later. The bucket and endpoint it prints are this store's, and the tokens those stored
    now (or, to render a stored dossier again, those its S3 metadata names); they are returned
    as metadata to store with it."""
    from archiver.dossier import (
        RENDERER_VERSION,
        DossierInput,
        format_sequences,
        load_events,
        load_timestamps,
        parse_sequences,
        render_dossier_bytes,
    )

    manifest = request.manifest
    debt_id, sequence = manifest["debt_id"], manifest["sequence"]
    if request.stored_metadata is None:
        where = dossier_location(request.store)
        tokens = load_timestamps(request.store, debt_id, sequence)
    else:
        where = {k: v for k, v in request.stored_metadata.items() if k in ("bucket", "endpoint")}
        shown = parse_sequences(request.stored_metadata.get(TIMESTAMPS_METADATA))
        tokens = load_timestamps(request.store, debt_id, sequence, shown) if shown else {}
    if tokens:
        where[TIMESTAMPS_METADATA] = format_sequences(tokens)
    events = load_events(request.store, manifest)
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
            timestamps=tokens,
        )
    )
    return RenderedDossier(pdf, RENDERER_VERSION, where)


def stored_dossier_input(
    store: ObjectStore, debt_id: str, sequence: int | None = None, *, later_events: bool = False
) -> DossierInput:
    """What the dossier of manifest ``sequence`` (the latest when None) is rendered from, read
    from S3 alone (see :func:`archiver.dossier.load_dossier_input`), with the bucket and
    endpoint the stored dossier was rendered with, if one is stored: rendering it gives the
    stored bytes. Without them (no dossier stored, or one stored before dossiers named
    their bucket) the verify steps say ``$BUCKET``; the tokens shown are those the stored
    dossier showed, unless ``later_events`` (a dossier rendered on demand shows every token
    stored now, as it shows the later events) or no dossier is stored."""
    from archiver.dossier import load_dossier_input, parse_sequences

    inp = load_dossier_input(store, debt_id, sequence, later_events=later_events)
    stored = store.head(keys.dossier_key(debt_id, inp.manifest["sequence"]))
    if stored is None:
        return inp
    where = stored.metadata
    tokens = inp.timestamps
    if not later_events:  # as archived: the tokens the stored dossier showed, no later one
        shown = parse_sequences(where.get(TIMESTAMPS_METADATA))
        tokens = {seq: token for seq, token in tokens.items() if seq in shown}
    return replace(
        inp, bucket=where.get("bucket"), endpoint=where.get("endpoint"), timestamps=tokens
    )


def rerender_stored(
    manifest: dict[str, Any], manifest_key: str, manifest_sha256: str, store: ObjectStore
) -> tuple[bytes, str]:
    """Re-render the dossier of a stored manifest from S3 alone: ``(pdf, renderer version)``."""
    from archiver.dossier import RENDERER_VERSION, render_dossier_bytes

    inp = stored_dossier_input(store, manifest["debt_id"], manifest["sequence"])
    return render_dossier_bytes(inp), RENDERER_VERSION


def open_configured_timestamper(stack: ExitStack, config: ArchiverConfig) -> Timestamper | None:
    """The configured TSAs (``ARCHIVER_TSA_URL``, trusting ``ARCHIVER_TSA_CA``), their HTTP
    client closed with ``stack``; None when no TSA is configured."""
    if not config.tsa_urls:
        return None
    # rfc3161-client and cryptography load only when a TSA is configured.
    from archiver.timestamps.client import open_timestamper

    timestamper, http = open_timestamper(config.tsa_urls, config.tsa_ca_pem())
    stack.callback(http.close)
    return timestamper


def timestamp_trust(config: ArchiverConfig) -> TimestampTrust:
    """How ``verify`` checks the manifests' tokens: against ``ARCHIVER_TSA_CA``, and a missing
    token is worth a notice when TSAs are configured."""
    return TimestampTrust(ca_pem=config.tsa_ca_pem(), expected=bool(config.tsa_urls))


@dataclass
class ArchiverSession:
    archiver: Archiver
    store: ObjectStore
    recorder: CatalogRecorder  # keeps the catalog; without one when it is corrupt
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
    store = _run_store(config, s3_client)
    with ExitStack() as stack:
        api = stack.enter_context(GetbillClient(api_settings, http=http, on_event=on_api_event))
        recorder, make = _pipeline(
            stack,
            config,
            api_settings,
            store=store,
            selector=selector,
            media_http=media_http,
            dry_run=dry_run,
            render_dossiers=render_dossiers,
            on_event=on_event,
        )
        yield ArchiverSession(make(api, None, None), store, recorder, policy)


def _pipeline(
    stack: ExitStack,
    config: ArchiverConfig,
    api_settings: ApiSettings,
    *,
    store: ObjectStore,
    selector: PolicySelector,
    media_http: httpx.Client | None,
    dry_run: bool,
    render_dossiers: bool,
    on_event: Callable[[ArchiveEvent], None] | None,
) -> tuple[CatalogRecorder, ArchiverFactory]:
    """The catalog recorder of a run and a builder of its :class:`Archiver` over a source
    (the client, or a sync's window), a debt-record rule and a run id."""
    media_settings = DownloadSettings(
        allowed_hosts=tuple(config.media_hosts), max_media_bytes=config.max_media_bytes
    )
    if media_http is None:
        media_http = stack.enter_context(media_client(media_settings))
    downloader = MediaDownloader(media_http, media_settings)
    # A corrupt catalog warns once and the run goes on (the catalog is derived from S3).
    recorder = open_recorder(config, dry_run=dry_run)
    stack.callback(recorder.close)
    timestamper = open_configured_timestamper(stack, config)
    dossiers = DossierStack() if render_dossiers and not dry_run else render_for_archive

    def make(
        source: FollowupSource, debt_rule: DebtRecordRule | None, run_id: str | None
    ) -> Archiver:
        return Archiver(
            api=source,
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
            subscribers=[recorder],
            render_dossier=dossiers,
            check_media=lambda ref: check_media_url(ref.url, media_settings),
            debt_rule=debt_rule,
            run_id=run_id,
            timestamper=timestamper,
        )

    return recorder, make


@dataclass
class SyncSession:
    syncer: Syncer
    store: ObjectStore
    recorder: CatalogRecorder
    policy: RetentionPolicy


@contextmanager
def open_sync(
    config: ArchiverConfig,
    api_settings: ApiSettings,
    settings: SyncSettings,
    *,
    s3_client: Any = None,
    http: httpx.Client | None = None,
    media_http: httpx.Client | None = None,
    render_dossiers: bool = False,
    media_concurrency: int = 2,
    on_event: Callable[[ArchiveEvent], None] | None = None,
    on_sync_event: Callable[[SyncEvent], None] | None = None,
    on_result: Callable[[Any], None] | None = None,
    on_api_event: Callable[[Any], None] | None = None,
    policy_asked: bool = False,
    clock: Callable[[], datetime] | None = None,
) -> Iterator[SyncSession]:
    """Everything a sync run needs, closed on exit: ``settings.concurrency`` debts at once,
    each with ``media_concurrency`` downloads."""
    policy = configured_policy(config)
    selector = PolicySelector(policy, config.policy_registry(), explicit=policy_asked)
    store = _run_store(config, s3_client)
    per_debt = replace(config, concurrency=max(1, media_concurrency))
    with ExitStack() as stack:
        api = stack.enter_context(GetbillClient(api_settings, http=http, on_event=on_api_event))
        recorder, make = _pipeline(
            stack,
            per_debt,
            api_settings,
            store=store,
            selector=selector,
            media_http=media_http,
            dry_run=settings.dry_run,
            render_dossiers=render_dossiers,
            on_event=on_event,
        )
        syncer = Syncer(
            client=api,
            store=store,
            make_archiver=make,
            policy=policy,
            settings=settings,
            on_event=on_sync_event,
            on_result=on_result,
            **({"clock": clock} if clock is not None else {}),
        )
        yield SyncSession(syncer, store, recorder, policy)


LISTEN_S3_CONNECTIONS = 64


def listen_queue_path(config: ArchiverConfig) -> Path:
    """The listener's queue file by default: beside the catalog, ``<catalog>.listen.db``."""
    catalog = config.catalog_path()
    return catalog.with_name(f"{catalog.stem}.listen.db")


@contextmanager
def open_listener(
    config: ArchiverConfig,
    api_settings: ApiSettings,
    settings: ListenSettings,
    *,
    queue: Path | None = None,
    s3_client: Any = None,
    http: httpx.Client | None = None,
    media_http: httpx.Client | None = None,
    on_event: Callable[[ArchiveEvent], None] | None = None,
    on_api_event: Callable[[Any], None] | None = None,
    policy_asked: bool = False,
) -> Iterator[Listener]:
    """A :class:`Listener` on the configured bucket, its queue file (``queue``, else
    :func:`listen_queue_path`) closed on exit. Its archive session (client, pipeline,
    catalog) is opened on the worker's own thread, where the catalog connection is used."""
    from archiver.listen.queue import DeliveryQueue
    from archiver.listen.server import Listener
    from archiver.listen.worker import ArchiveTools

    policy = configured_policy(config)
    # Deliveries are stored from many threads at once (one per request in flight): a pool
    # smaller than that would open and drop a connection for each one over it.
    store = _run_store(config, s3_client, max_pool_connections=LISTEN_S3_CONNECTIONS)
    per_debt = replace(config, concurrency=max(1, min(config.concurrency, 2)))

    @contextmanager
    def session() -> Iterator[ArchiveTools]:
        selector = PolicySelector(policy, config.policy_registry(), explicit=policy_asked)
        with ExitStack() as stack:
            api = stack.enter_context(GetbillClient(api_settings, http=http, on_event=on_api_event))
            _, make = _pipeline(
                stack,
                per_debt,
                api_settings,
                store=store,
                selector=selector,
                media_http=media_http,
                dry_run=False,
                render_dossiers=settings.render_dossiers,
                on_event=on_event,
            )
            yield ArchiveTools(make(api, None, None), api)

    deliveries = DeliveryQueue.open(queue or listen_queue_path(config))
    try:
        yield Listener(
            store=store, queue=deliveries, settings=settings, policy=policy, open_session=session
        )
    finally:
        deliveries.close()
