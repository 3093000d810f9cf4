"""``archiver pack``: the dispute evidence pack of one debt, made from S3 alone.

Reads the manifest chain 1..N of the debt (N: the latest, or the one asked for), every object
manifest N names, the dossier stored with it and its receipt, every event and the timestamp
tokens beside the manifests; copies each, exact version, into a BagIt 1.0 bag
(:mod:`archiver.pack.bag`), checking its bytes on the way (:mod:`archiver.pack.copy`);
writes ``index.html`` and ``VERIFY.txt``; then records the handover as an export event
(:mod:`archiver.pack.export`).

Decisions, written down so a reviewer can check them:

* **Nothing half made under the pack's name.** The bag is built in a hidden folder beside
  the target and renamed into place (or zipped beside it and renamed) once complete and
  checked; any failure removes it. An existing target is never replaced.
* **The archive is the authority.** Records, media and the debt record must hash to what
  manifest N says; the dossier to what its receipt says; manifests, events and tokens to
  the SHA-256 they were stored with (and the manifests to the chain). A mismatch, a missing
  object or a broken chain stops the pack (:class:`IntegrityError` naming the key): a pack
  that does not prove itself is worse than none.
* **Purged objects are shown, never silently absent.** An object manifest N names that a
  purge deleted (marked in the manifest, or named by a deletion record written since) is
  listed in index.html and VERIFY.txt with its deletion record, which is in ``data/events/``.
* **The pack is a snapshot of now**: every event stored when it is made is in it, those after
  manifest N included. The export event of the pack itself is written after it, so it is in
  the next pack.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from archiver import TOOL_NAME, __version__
from archiver.common.ids import check_id
from archiver.common.schemas import validate
from archiver.common.time import iso, utcnow
from archiver.errors import ConfigError, IntegrityError, StorageError
from archiver.manifest.chain import UNREAD, ChainLink, chain_faults
from archiver.manifest.reader import manifest_history_problems, manifest_keys
from archiver.manifest.receipt import read_receipt
from archiver.pack.bag import TAGMANIFEST_SHA256, bagit_version, write_bag
from archiver.pack.contents import (
    ChainEntry,
    EventEntry,
    PackContents,
    followup_views,
    record_fields,
)
from archiver.pack.copy import Fixity, copy_item, hash_file, read_json, write_bytes
from archiver.pack.export import export_event, record_export
from archiver.pack.index import render_index, render_verify
from archiver.pack.layout import (
    DOSSIER_PATH,
    INDEX_PATH,
    RECEIPT_PATH,
    TSA_CA_PATH,
    VERIFY_PATH,
    PackItem,
    Purged,
    manifest_items,
    pack_path,
    token_sequences,
)
from archiver.pack.profile import PROFILE_ID
from archiver.pack.zipped import write_zip
from archiver.retention.events import event_keys, event_matter, purged_versions
from archiver.store import keys
from archiver.store.objects import ObjectStore

__all__ = ["PackResult", "PackSettings", "build_pack"]


@dataclass(frozen=True)
class PackSettings:
    """How to make a pack: who hands it over (``organization``, ``actor``, ``reason``), from
    which manifest (``sequence``; None: the latest), as a folder or a ZIP64 file (``zip``),
    with how many objects copied at once (``concurrency``)."""

    organization: str | None
    actor: str
    reason: str | None = None
    sequence: int | None = None
    zip: bool = False
    concurrency: int = 4
    tsa_ca_pem: bytes | None = None  # ARCHIVER_TSA_CA: carried so tokens verify offline


@dataclass
class PackResult:
    """What :func:`build_pack` made."""

    debt_id: str
    path: Path
    sequence: int
    manifest_key: str
    manifest_sha256: str
    serialization: str  # "directory" or "zip"
    files: int = 0
    bytes: int = 0
    manifests: int = 0
    events: int = 0
    tokens: int = 0
    dossier: bool = False
    purged: list[Purged] = field(default_factory=list)
    tagmanifest_sha256: str = ""
    event_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "debt_id": self.debt_id,
            "path": str(self.path),
            "sequence": self.sequence,
            "manifest_key": self.manifest_key,
            "manifest_sha256": self.manifest_sha256,
            "serialization": self.serialization,
            "files": self.files,
            "bytes": self.bytes,
            "manifests": self.manifests,
            "events": self.events,
            "tokens": self.tokens,
            "dossier": self.dossier,
            "purged": [{"key": p.key, "event_key": p.event_key} for p in self.purged],
            "tagmanifest_sha256": self.tagmanifest_sha256,
            "export_event": self.event_key,
        }


def _choose_sequence(store: ObjectStore, debt_id: str, wanted: int | None) -> list[str]:
    """The keys of manifests 1..N (N: ``wanted`` or the latest)."""
    stored = manifest_keys(store, debt_id)
    if not stored:
        raise StorageError(
            f"debt {debt_id} has no manifest in bucket {store.bucket!r}: archive it first",
            debt_id=debt_id,
            bucket=store.bucket,
        )
    sequence = stored[-1][0] if wanted is None else wanted
    if not any(seq == sequence for seq, _ in stored):
        raise ConfigError(
            f"debt {debt_id} has no manifest {sequence}; its manifests are "
            f"{stored[0][0]} to {stored[-1][0]}",
            debt_id=debt_id,
        )
    return [key for seq, key in stored if seq <= sequence]


def _stored_item(store: ObjectStore, key: str, path: str, kind: str) -> PackItem:
    """An object that is checked against the SHA-256 it was stored with."""
    info = store.head(key)
    if info is None:
        raise StorageError("object not found; nothing packed", key=key)
    return PackItem(key, path, kind, info.version_id, info.sha256, info.size)


def _copy_all(
    store: ObjectStore, items: list[PackItem], root: Path, concurrency: int
) -> dict[str, Fixity]:
    """Copy ``items`` under ``root``, ``concurrency`` at a time (largest first); stops at
    the first failure."""
    fixities: dict[str, Fixity] = {}
    ordered = sorted(items, key=lambda i: -(i.size or 0))
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = {pool.submit(copy_item, store, item, root): item for item in ordered}
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            for f in futures:
                f.cancel()
            raise failed[0].exception()  # type: ignore[misc]
        for future, item in futures.items():
            fixities[item.path] = future.result()
    return fixities


def _chain(
    debt_id: str, manifest_paths: list[tuple[str, str]], root: Path, fixities: dict[str, Fixity]
) -> tuple[list[ChainEntry], list[dict[str, Any] | None]]:
    """Read the copied manifests back (small), check the chain; its entries and contents."""
    links, entries, parsed = [], [], []
    for key, path in manifest_paths:
        doc = read_json(root / path)
        doc = doc if isinstance(doc, dict) else None
        parsed_key = keys.parse_manifest_key(key)
        sequence = parsed_key[1] if parsed_key else 0
        previous = doc.get("previous") if doc is not None else UNREAD
        links.append(ChainLink(sequence, key, fixities[path].sha256, previous))
        parsed.append(doc)
        entries.append(
            ChainEntry(
                sequence=sequence,
                path=path,
                sha256=fixities[path].sha256,
                created_at=str(doc.get("created_at")) if doc else None,
                previous_sha256=(previous or {}).get("sha256")
                if isinstance(previous, dict)
                else None,
            )
        )
    faults = chain_faults(links)
    if faults:
        raise IntegrityError(
            "the manifest chain of this debt is broken; nothing packed. Run `archiver verify`: "
            + "; ".join(f"{f.key}: {f.message}" for f in faults),
            debt_id=debt_id,
            problems=[{"key": f.key, "message": f.message} for f in faults],
        )
    return entries, parsed


def _events(root: Path, items: Iterable[PackItem]) -> list[dict[str, Any]]:
    """The copied events, parsed (as :func:`archiver.retention.events.read_events` gives them)."""
    out = []
    for item in items:
        event = read_json(root / item.path)
        if not isinstance(event, dict):
            raise IntegrityError("a stored event is not a JSON object", key=item.key)
        out.append({**event, "key": item.key, "_path": item.path})
    return out


def build_pack(
    store: ObjectStore,
    debt_id: str,
    output: Path,
    settings: PackSettings,
    *,
    now: Callable[[], datetime] = utcnow,
) -> PackResult:
    """Make the pack of ``debt_id`` at ``output`` (see the module docstring)."""
    check_id(debt_id, what="debt id")
    organization = (settings.organization or "").strip()
    if not organization:
        raise ConfigError(
            "no organization: set ARCHIVER_ORGANIZATION (or --organization) to who hands the "
            "pack over; it is the pack's Source-Organization"
        )
    if not settings.actor.strip():
        raise ConfigError("an actor (who makes the pack) is required: --actor or $USER")
    output = Path(output)
    if output.exists() or output.is_symlink():
        raise ConfigError(f"{output} exists: a pack is never written over anything")
    history = manifest_history_problems(store, debt_id)
    if history:
        raise IntegrityError(
            "the manifest chain of this debt was tampered with; nothing packed. Run "
            "`archiver verify`: " + "; ".join(history),
            debt_id=debt_id,
        )
    manifest_key_list = _choose_sequence(store, debt_id, settings.sequence)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    except OSError as exc:
        raise ConfigError(f"cannot write beside {output}: {exc.strerror}") from None
    folder = output.stem if settings.zip and output.suffix.lower() == ".zip" else output.name
    root = tmp / folder
    try:
        result = _build(store, debt_id, root, manifest_key_list, organization, settings, now)
        if settings.zip:
            partial = tmp / f"{folder}.zip"
            write_zip(root, partial, folder=folder)
            partial.replace(output)
        else:
            root.rename(output)
        result.path = output
        result.serialization = "zip" if settings.zip else "directory"
        try:
            event = export_event(
                debt_id=debt_id,
                at=now(),
                actor=settings.actor.strip(),
                reason=(settings.reason or "").strip() or None,
                manifest={
                    "key": result.manifest_key,
                    "sha256": result.manifest_sha256,
                    "sequence": result.sequence,
                },
                pack={
                    "name": output.name,
                    "serialization": result.serialization,
                    "tagmanifest_sha256": result.tagmanifest_sha256,
                    "files": result.files,
                    "bytes": result.bytes,
                    "profile": PROFILE_ID,
                },
            )
            result.event_key, _, _ = record_export(store, event, now=now())
        except BaseException:
            # A pack whose handover is not recorded is not handed over.
            _remove(output)
            raise
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _build(
    store: ObjectStore,
    debt_id: str,
    root: Path,
    manifest_key_list: list[str],
    organization: str,
    settings: PackSettings,
    now: Callable[[], datetime],
) -> PackResult:
    root.mkdir()
    created = now()
    # 1. the small objects first: manifests, tokens, events (checked against their stored SHA-256)
    manifest_items_ = [
        _stored_item(store, k, pack_path(debt_id, k), "manifest") for k in manifest_key_list
    ]
    last_seq = keys.parse_manifest_key(manifest_key_list[-1])
    sequence = last_seq[1] if last_seq else len(manifest_key_list)
    prefix = keys.debt_prefix(debt_id)
    beside = [k[len(f"{prefix}manifests/") :] for k in store.list_keys(f"{prefix}manifests/")]
    token_items = [
        _stored_item(store, f"{prefix}manifests/{name}", f"data/manifests/{name}", "token")
        for seq, names in token_sequences(beside).items()
        if seq <= sequence
        for name in names
    ]
    event_items = [
        _stored_item(store, k, pack_path(debt_id, k), "event") for k in event_keys(store, debt_id)
    ]
    small = manifest_items_ + token_items + event_items
    fixities = _copy_all(store, small, root, settings.concurrency)
    chain, parsed = _chain(debt_id, [(i.key, i.path) for i in manifest_items_], root, fixities)
    manifest = parsed[-1]
    mkey, msha = manifest_items_[-1].key, fixities[manifest_items_[-1].path].sha256
    if manifest is None or validate("manifest", manifest):
        raise IntegrityError("the manifest does not match its schema; nothing packed", key=mkey)
    tokens_of: dict[int, list[str]] = {}
    for item in token_items:
        tokens_of.setdefault(int(item.path.rsplit("/", 1)[1][:8]), []).append(item.path)
    chain = [
        ChainEntry(
            c.sequence,
            c.path,
            c.sha256,
            c.created_at,
            c.previous_sha256,
            tokens_of.get(c.sequence, []),
        )
        for c in chain
    ]
    events = _events(root, event_items)

    # 2. what the manifest names, and the dossier stored with it (checked against them)
    objects, purged = manifest_items(manifest, purged_versions(events))
    copied, dossier_note = _dossier(store, debt_id, sequence, mkey, msha, root)
    fixities.update(copied)
    fixities.update(_copy_all(store, objects, root, settings.concurrency))

    # 3. what a person reads
    records = {}
    for item in objects:
        if item.kind == "record" and item.followup_id is not None:
            records[item.followup_id] = read_json(root / item.path)
    paths = {i.key: i.path for i in objects}
    debt_item = next((i for i in objects if i.kind == "debt"), None)
    contents = PackContents(
        debt_id=debt_id,
        organization=organization,
        created_at=iso(created),
        manifest_key=mkey,
        manifest_sha256=msha,
        sequence=sequence,
        bucket=store.bucket,
        profile_id=PROFILE_ID,
        tool=f"{TOOL_NAME} {__version__}",
        chain=chain,
        followups=followup_views(manifest, records, paths, fixities, purged),
        events=[
            EventEntry(
                path=e["_path"],
                action=str(e.get("action") or "?"),
                at=_str(e.get("at")),
                actor=_str(e.get("actor")),
                matter=event_matter(e) if e.get("action") in ("hold", "release") else None,
                reason=_str(e.get("reason")),
            )
            for e in events
        ],
        purged=purged,
        files=fixities,
        dossier_path=DOSSIER_PATH if DOSSIER_PATH in fixities else None,
        dossier_note=dossier_note,
        debt_path=debt_item.path if debt_item else None,
        debt_fields=record_fields(read_json(root / debt_item.path)) if debt_item else [],
    )
    if settings.tsa_ca_pem:
        fixities[TSA_CA_PATH] = write_bytes(root, TSA_CA_PATH, settings.tsa_ca_pem)
    fixities[VERIFY_PATH] = write_bytes(root, VERIFY_PATH, render_verify(contents).encode())
    fixities[INDEX_PATH] = write_bytes(root, INDEX_PATH, render_index(contents).encode())

    # 4. the bag
    write_bag(
        root,
        fixities,
        {
            "BagIt-Profile-Identifier": PROFILE_ID,
            "Source-Organization": organization,
            "External-Identifier": debt_id,
            "External-Description": f"Dispute evidence pack of debt {debt_id}, from manifest "
            f"{sequence} of its archive",
            "Bagging-Date": created.date().isoformat(),
            "Pack-Created": iso(created),
            "Bag-Software-Agent": f"{TOOL_NAME} {__version__} (bagit-python {bagit_version()})",
            "Archive-Manifest-Key": mkey,
            "Archive-Manifest-SHA256": msha,
            "Archive-Manifest-Sequence": str(sequence),
            "Archive-Bucket": store.bucket,
        },
    )
    return PackResult(
        debt_id=debt_id,
        path=root,
        sequence=sequence,
        manifest_key=mkey,
        manifest_sha256=msha,
        serialization="directory",
        files=len(fixities),
        bytes=sum(f.size for f in fixities.values()),
        manifests=len(manifest_items_),
        events=len(event_items),
        tokens=len(token_items),
        dossier=DOSSIER_PATH in fixities,
        purged=purged,
        tagmanifest_sha256=hash_file(root / TAGMANIFEST_SHA256).sha256,
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dossier(
    store: ObjectStore, debt_id: str, sequence: int, mkey: str, msha: str, root: Path
) -> tuple[dict[str, Fixity], str | None]:
    """Copy the stored dossier of manifest ``sequence`` and its receipt, checked against each
    other and the manifest: their fixities; or none, and the note that says so."""
    dkey = keys.dossier_key(debt_id, sequence)
    rkey = keys.dossier_receipt_key(debt_id, sequence)
    receipt = store.head(rkey)
    if receipt is None:
        info = store.head(dkey)
        if info is None:
            return {}, (
                f"No dossier is stored for manifest {sequence}; `archiver dossier {debt_id} "
                f"--sequence {sequence} --as-archived -o dossier.pdf` renders it from the "
                "archive."
            )
        item = PackItem(dkey, DOSSIER_PATH, "dossier", info.version_id, info.sha256, info.size)
        return {DOSSIER_PATH: copy_item(store, item, root)}, None
    receipt_item = PackItem(
        rkey, RECEIPT_PATH, "receipt", receipt.version_id, receipt.sha256, receipt.size
    )
    copied = {RECEIPT_PATH: copy_item(store, receipt_item, root)}
    _, ref, faults = read_receipt(
        (root / RECEIPT_PATH).read_bytes(),
        debt_id=debt_id,
        sequence=sequence,
        dossier_key=dkey,
        manifest_key=mkey,
        manifest_sha256=msha,
    )
    if ref is None:
        raise IntegrityError(
            "the dossier receipt does not vouch for this manifest's dossier; nothing packed: "
            + "; ".join(faults),
            key=rkey,
        )
    dossier = PackItem(dkey, DOSSIER_PATH, "dossier", ref.version_id, ref.sha256, ref.size)
    copied[DOSSIER_PATH] = copy_item(store, dossier, root)
    return copied, None
