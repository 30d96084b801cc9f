"""Access exports: a subject's records streamed as JSON Lines into the blob store, done once
per request, and discovery from one consistent read."""

from __future__ import annotations

import hashlib
import json
import typing
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from connectors.kit.activities import heartbeat
from connectors.kit.store import OperationKey, Store
from dsr.blobstore import BlobStore
from dsr.connector_contract import AccessResult, CategoryHolding, Discovery, export_area

EXPORT_CHUNK_ROWS = 1000


def export_jsonl(
    blobs: BlobStore, key: str, chunks: Iterable[Iterable[Mapping[str, Any]]]
) -> Export:
    """Stream records (each with its ``category``) into a JSON Lines blob, one chunk at a time
    with a heartbeat after each. Returns the count per category, the blob reference and its
    SHA-256, or no reference when there was nothing to export."""
    counts: Counter[str] = Counter()
    digest = hashlib.sha256()
    with blobs.open_writer(key) as file:
        for number, chunk in enumerate(chunks, start=1):
            for record in chunk:
                counts[record["category"]] += 1
                line = json.dumps(record, default=_json_default).encode() + b"\n"
                digest.update(line)
                file.write(line)
            heartbeat({"chunks": number, "records": sum(counts.values())})
    ref = blobs.ref(key)
    if not counts:
        blobs.delete(ref)
        return Export({}, None, None)
    return Export(dict(counts), ref, digest.hexdigest())


class Export(typing.NamedTuple):
    records: dict[str, int]
    blob_ref: str | None
    sha256: str | None


def export_key(request_id: str, connector: str) -> str:
    return f"{export_area(request_id)}{connector}.jsonl"


def discover_holdings(
    store: Store,
    connector: str,
    categories: Iterable[str],
    holding: Callable[[Session, str], CategoryHolding | None],
) -> Discovery:
    """Discovery from one consistent read: each category the subject has records in."""
    discovery = Discovery(connector=connector)
    with store.reading() as session:
        for category in categories:
            found = holding(session, category)
            if found is not None:
                discovery.holdings.append(found)
    return discovery


def export_once(
    store: Store,
    blobs: BlobStore,
    connector: str,
    key: OperationKey,
    chunks: Callable[[Session], Iterable[Iterable[Mapping[str, Any]]]],
) -> AccessResult:
    """An access export, done once per key: a retry returns the recorded result, unless its
    blob has since gone, in which case the records are exported again."""
    done = store.lookup(key, AccessResult)
    if done is not None and (done.blob_ref is None or blobs.exists(done.blob_ref)):
        return done
    with store.reading() as session:
        export = export_jsonl(blobs, export_key(key.request_id, connector), chunks(session))
    result = AccessResult(
        connector=connector, records=export.records, blob_ref=export.blob_ref, sha256=export.sha256
    )
    store.remember(key, result)
    return result


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot export a value of type {type(value).__name__}")
