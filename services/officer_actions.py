"""What the officer service does for officers besides Updates: the officers' directory,
legal holds, following requests and the register's report, reading a request's access
package or kept proof, checking the audit ledger and recording a database restore in it
(entering requests and relaying codes: ``services.intake_actions``; Web UI sessions:
``services.session_actions``). Each action runs for a principal the service has already proven
(``dsr.authorization``) and is recorded under that identity, never a typed name. The roles
each needs are in ``roles.yaml``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, BinaryIO

from pydantic import BaseModel, StringConstraints
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from temporalio.client import Client
from temporalio.service import RPCError

from dsr import holds, ledger, ledger_restore, officers, package_links, register, report
from dsr.assertions import Principal
from dsr.codec import DecryptionError, EncryptionCodec, unseal
from dsr.keyring import load_keyring
from dsr.models import REQUEST_ID
from dsr.notes import NoteKeys, note_hash
from dsr.register import ConfirmationRecord
from dsr.sealedblobs import sealed_blob_store
from dsr.settings import Settings
from services import workflow_client as officer

HOLDS = "holds"  # the target of hold actions
REGISTER = "register"  # the target of listing requests
CHUNK_BYTES = 64 * 1024


class ActionRefused(Exception):
    """Refused for what it asks (no such hold, no package): says why; ``status`` for HTTP."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class NoArguments(BaseModel):
    model_config = {"extra": "forbid"}


class HoldRelease(BaseModel):
    hold_id: Annotated[str, StringConstraints(pattern=r"^HOLD-[A-Za-z0-9]{1,20}$")]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3,
                                             max_length=500)]


class HoldQuery(BaseModel):
    everything: bool = False


class RecordQuery(BaseModel):
    """A request's kept record (its access package, the answer as sent)."""

    request_id: Annotated[str, StringConstraints(pattern=REQUEST_ID.pattern)]


@dataclass(frozen=True)
class Download:
    """Bytes to send as they are read (a package), with their media type."""

    chunks: Iterator[bytes]
    media_type: str


@dataclass
class Context:
    settings: Settings
    engine: Engine
    client: Client | None


Run = Callable[[Context, Principal, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Action:
    model: type[BaseModel]
    target: Callable[[Any], str]
    run: Run


async def place_hold(ctx: Context, principal: Principal, spec: holds.HoldSpec) -> Any:
    spec = spec.model_copy(update={"placed_by": principal.principal_id})
    try:
        hold = await asyncio.to_thread(holds.place_hold, ctx.engine, ctx.settings.secret, spec,
                                       datetime.now(UTC))
    except holds.HoldError as error:
        raise ActionRefused(str(error), 400) from None
    return hold.model_dump(mode="json")


async def release_hold(ctx: Context, principal: Principal, release: HoldRelease) -> Any:
    """Released, then every deferred erasure is asked to look again (what only this hold was
    keeping is erased); if Temporal cannot be reached the release stands and says so."""
    try:
        hold = await asyncio.to_thread(holds.release_hold, ctx.engine, ctx.settings.secret,
                                       release.hold_id, principal.principal_id, release.reason,
                                       datetime.now(UTC))
    except holds.HoldError as error:
        raise ActionRefused(str(error), 404 if "no hold" in str(error) else 409) from None
    asked: int | None = None
    if ctx.client is not None:
        with suppress(RPCError, RuntimeError):  # the release stands; `hold recheck` follows
            asked = await officer.recheck_deferred(ctx.client)
    return {"hold": hold.model_dump(mode="json"), "deferred_asked": asked}


async def list_holds(ctx: Context, principal: Principal, query: HoldQuery) -> Any:
    secret, *previous = ctx.settings.server_keys.secrets
    listed = await asyncio.to_thread(holds.list_holds, ctx.engine, secret, datetime.now(UTC),
                                     query.everything, previous)
    return [hold.model_dump(mode="json") for hold in listed]


async def read_package(ctx: Context, principal: Principal, query: RecordQuery) -> Download:
    """The access package, decrypted as it is sent; the reading is in the ledger."""
    blobs = sealed_blob_store(ctx.settings)
    ref = blobs.ref(f"packages/{query.request_id}.zip")
    if not await asyncio.to_thread(blobs.exists, ref):
        raise ActionRefused(f"no access package for {query.request_id}: only access and "
                            "portability requests have one, once answered", 404)
    try:
        reader = await asyncio.to_thread(blobs.open_reader, ref)
        first = await asyncio.to_thread(reader.read, CHUNK_BYTES)
    except DecryptionError as error:
        raise ActionRefused(f"the access package of {query.request_id} is refused: {error}",
                            422) from None
    record(ctx, principal, "package_downloaded", query.request_id, {})
    return Download(_chunks(first, reader), "application/zip")


def _chunks(first: bytes, reader: BinaryIO) -> Iterator[bytes]:
    with reader:
        chunk = first
        while chunk:
            yield chunk
            chunk = reader.read(CHUNK_BYTES)


async def read_proof(ctx: Context, principal: Principal, query: RecordQuery) -> Download:
    """The answer as sent, kept encrypted as proof, decrypted; the reading is in the ledger."""
    def read() -> tuple[str, bytes] | None:
        with Session(ctx.engine) as session:
            record = session.get(ConfirmationRecord, query.request_id)
            if record is None:
                return None
            return record.kind, unseal(EncryptionCodec(load_keyring(ctx.settings)),
                                       record.message)

    found = await asyncio.to_thread(read)
    if found is None:
        raise ActionRefused(f"no confirmation kept for {query.request_id}: not answered yet, "
                            "or purged after its retention", 404)
    kind, message = found
    record(ctx, principal, "proof_read", query.request_id, {"kind": kind})
    return Download(iter([message]), "message/rfc822")


def record(ctx: Context, principal: Principal, kind: str, request_id: str,
           detail: dict[str, Any]) -> None:
    """An entry in the audit ledger, under who signed."""
    with Session(ctx.engine) as session, session.begin():
        ledger.append(session, kind, principal.principal_id, datetime.now(UTC), request_id,
                      detail, ledger.ledger_key(ctx.settings.secret))


async def verify_ledger(ctx: Context, principal: Principal, _: NoArguments) -> Any:
    result = await asyncio.to_thread(ledger.verify_configured, ctx.engine, ctx.settings)
    return result.model_dump(mode="json")


class RestoreNote(BaseModel):
    """Why the chain ends before its anchors: the restore, kept as a keyed hash only."""

    model_config = {"extra": "forbid"}
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3,
                                             max_length=500)]


async def record_restore(ctx: Context, principal: Principal, note: RestoreNote) -> Any:
    """After a database restore: the entries lost, recorded under the administrator."""
    secret = ctx.settings.secret
    current, *previous = ledger.held_keys(ctx.settings)
    try:
        recorded = await asyncio.to_thread(
            ledger_restore.record_restore, ctx.engine, current,
            ledger.anchor_store(ctx.settings), principal.principal_id,
            note_hash(NoteKeys.from_secret(secret), note.reason), datetime.now(UTC),
            previous)
    except (ledger_restore.RestoreRefused, ledger.AnchorStoreError) as error:
        raise ActionRefused(str(error)) from None
    return recorded.model_dump(mode="json")


async def read_status(ctx: Context, principal: Principal, query: RecordQuery) -> Any:
    """Where a request stands: from Temporal while it runs, from the register after."""
    if ctx.client is not None:
        with suppress(officer.OfficerError):
            status = await officer.status(ctx.client, query.request_id)
            return {"temporal": status.model_dump(mode="json")}
    try:
        return {"register": await asyncio.to_thread(_register_status, ctx, query.request_id)}
    except LookupError as error:
        raise ActionRefused(str(error).strip("'\""), 404) from None


def _register_status(ctx: Context, request_id: str) -> dict[str, Any]:
    record, milestones = register.get_request(ctx.engine, request_id)
    secret, *previous = ctx.settings.server_keys.secrets
    keys = NoteKeys.from_secret(secret, previous)  # the officers' notes, opened to be shown
    return {
        "request_id": record.request_id, "status": record.status, "rights": record.rights,
        "jurisdiction": record.jurisdiction, "received_at": record.received_at.isoformat(),
        "due_at": record.due_at.isoformat() if record.due_at else None,
        "closed_at": record.closed_at.isoformat() if record.closed_at else None,
        "outcome": record.outcome, "child": record.child,
        "milestones": [{"step": m.step, "at": m.at.isoformat(), "actor": m.actor,
                        "detail": register.readable_detail(m, keys)} for m in milestones],
    }


async def list_requests(ctx: Context, principal: Principal,
                        filters: register.RequestFilter) -> Any:
    records = await asyncio.to_thread(register.list_requests, ctx.engine, filters,
                                      datetime.now(UTC))
    return [{"request_id": r.request_id, "status": r.status, "rights": r.rights,
             "jurisdiction": r.jurisdiction, "received_at": r.received_at.isoformat(),
             "due_at": r.due_at.isoformat() if r.due_at else None, "overdue": r.overdue,
             "child": r.child}
            for r in records]


async def read_report(ctx: Context, principal: Principal, span: report.ReportRange) -> Any:
    """The register's figures for requests received in the range: counts only."""
    records = await asyncio.to_thread(report.load_records, ctx.engine, span.start, span.end)
    return report.compute_report(records, span.start, span.end).to_dict()


class LinkRevocation(RecordQuery):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                             max_length=500)]


async def revoke_link(ctx: Context, principal: Principal, revocation: LinkRevocation) -> Any:
    """Withdraw a package's download link (sent to the wrong address, say)."""
    revoked = await asyncio.to_thread(
        package_links.revoke, ctx.engine, ctx.settings.secret, revocation.request_id,
        principal.principal_id, revocation.reason, datetime.now(UTC))
    if not revoked:
        raise ActionRefused(f"{revocation.request_id} has no download link that still works",
                            404)
    return {"request_id": revocation.request_id, "revoked": True}


async def register_officer(ctx: Context, principal: Principal,
                           registration: officers.Registration) -> Any:
    officer_ = await asyncio.to_thread(officers.register, ctx.engine, ctx.settings.secret,
                                       registration, principal, datetime.now(UTC))
    return officer_.model_dump(mode="json")


async def revoke_officer(ctx: Context, principal: Principal,
                         revocation: officers.Revocation) -> Any:
    try:
        officer_ = await asyncio.to_thread(officers.revoke, ctx.engine, ctx.settings.secret,
                                           revocation, principal, datetime.now(UTC))
    except officers.DirectoryError as error:
        raise ActionRefused(str(error)) from None
    return officer_.model_dump(mode="json")


async def list_officers(ctx: Context, principal: Principal, _: NoArguments) -> Any:
    listed = await asyncio.to_thread(officers.officers, ctx.engine)
    return [o.model_dump(mode="json") for o in listed]


def _request(query: RecordQuery) -> str:
    return officer.workflow_id(query.request_id)


ACTIONS: dict[str, Action] = {
    "register_officer": Action(officers.Registration, lambda _: officers.DIRECTORY,
                               register_officer),
    "revoke_officer": Action(officers.Revocation, lambda _: officers.DIRECTORY, revoke_officer),
    "list_officers": Action(NoArguments, lambda _: officers.DIRECTORY, list_officers),
    "place_hold": Action(holds.HoldSpec, lambda _: HOLDS, place_hold),
    "release_hold": Action(HoldRelease, lambda _: HOLDS, release_hold),
    "list_holds": Action(HoldQuery, lambda _: HOLDS, list_holds),
    "read_package": Action(RecordQuery, _request, read_package),
    "read_proof": Action(RecordQuery, _request, read_proof),
    "verify_ledger": Action(NoArguments, lambda _: ledger.LEDGER, verify_ledger),
    "record_restore": Action(RestoreNote, lambda _: ledger.LEDGER, record_restore),
    "read_status": Action(RecordQuery, _request, read_status),
    "list_requests": Action(register.RequestFilter, lambda _: REGISTER, list_requests),
    "revoke_link": Action(LinkRevocation, _request, revoke_link),
    "read_report": Action(report.ReportRange, lambda _: REGISTER, read_report),
}
