"""Voice connector: end users' calls (and their optional recordings), held for the customers
that made or took them.

The customer is the controller of its end users' data and the group its processor, so every
lookup is confined to one customer account: without ``scope.customer_account`` the connector
finds nothing, and it never searches across customers.

Erasure anonymises rather than deletes, per category:
- ``call_recordings``: the recording (its audio file reference and transcript) is deleted and
  the call no longer points to it;
- ``location_data``: cell id, latitude and longitude are cleared;
- ``phone_number`` and ``traffic_data``: the call is cut loose from the person. The number is
  replaced by a keyed-hash pseudonym (statistics still count distinct numbers), the route is
  cleared, ``started_at`` is cut to the day, and the recording and location go too (a record
  that can no longer be found for its subject must not keep what could identify them). Day,
  duration, direction, status, the customer's caller id and the country ended stay, for
  statistics and the records of the customer. The call gets ``anonymised_at`` and is no longer
  the subject's.

An erase or sweep rule may be confined to the calls that ended in some countries
(``countries_ended``): the retention of communications differs by country. Discovery reports,
per category, the countries the calls ended in and the newest call per country.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import ColumnElement, CursorResult, delete, func, or_, select, update
from sqlalchemy.orm import Session

from connectors.kit.connector import SubjectConnector, sweep_scope
from connectors.kit.cutoffs import country_conditions, id_chunks
from connectors.kit.exports import EXPORT_CHUNK_ROWS
from connectors.kit.restrictions import is_restricted
from connectors.voice_store import (
    CALL_RECORDINGS,
    CATEGORIES,
    LINK_CATEGORIES,
    LOCATION_COLUMNS,
    LOCATION_DATA,
    PHONE_NUMBER,
    TRAFFIC_DATA,
    TREATMENTS,
    Call,
    Reached,
    Recording,
    Restriction,
    VoiceBase,
    VoiceOperationLog,
    Where,
    holds,
    locate_holders,
    subject_phones,
    subject_where,
)
from dsr.connector_contract import (
    CategoryHolding,
    EraseResult,
    EraseRule,
    FlagInput,
    Scope,
    SweepInput,
    SweepResult,
    Treatment,
)
from dsr.hashing import keyed_hash
from dsr.models import Identity, IdentityType

# --- the connector -------------------------------------------------------------------------


class VoiceConnector(SubjectConnector[Where, Reached]):
    name: ClassVar[str] = "voice"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    activities: ClassVar[tuple[str, ...]] = (
        "discover",
        "access",
        "erase",
        "restrict",
        "locate",
        "sweep",
    )
    schema = VoiceBase
    operation_log = VoiceOperationLog
    restriction_model = Restriction
    sweeps_countries = True
    holders = staticmethod(locate_holders)

    def subject(self, scope: Scope) -> Where | None:
        phones = subject_phones(scope)
        if not phones or scope.customer_account is None:
            return None
        return subject_where(scope.customer_account, phones)

    def holding(self, session: Session, subject: Where, category: str) -> CategoryHolding | None:
        return _holding(session, subject, category)

    def export_chunks(self, session: Session, subject: Where) -> Iterator[list[dict[str, Any]]]:
        return _export_chunks(session, subject)

    def reach(self, rules: list[EraseRule]) -> Reached:
        return _reached(rules)

    def is_restricted(self, customer_account: str, phone: str) -> bool:
        """Whether processing of this end user's calls is restricted for this customer."""
        identity = Identity(type=IdentityType.PHONE, value=phone)
        return is_restricted(self.store, self.restrictions, customer_account, identity)

    # --- erase, sweep and restrict, inside the operation's transaction ---------------------

    def erase_now(
        self, session: Session, where: Where, reached: Reached, scope: Scope
    ) -> EraseResult:
        erased: dict[str, int] = {}
        for category, clear in (
            (CALL_RECORDINGS, _delete_recordings),
            (LOCATION_DATA, _clear_location),
        ):
            condition = _any(reached, LINK_CATEGORIES | {category})
            cleared = 0 if condition is None else clear(session, where, condition)
            if category in reached or cleared:
                erased[category] = cleared
        link = _any(reached, LINK_CATEGORIES)
        if link is not None:
            unlinked = self._unlink(session, where, link, scope.as_of)
            erased.update(dict.fromkeys(sorted(LINK_CATEGORIES), unlinked))
        retained = {category: _count(session, where, category) for category in reached}
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """Anonymise every customer's records past their retention, as ``erase`` would."""
        reached = _reached(call.rules)
        scope = sweep_scope(call)
        anonymised: Counter[str] = Counter(dict.fromkeys(cutoffs, 0))
        if cutoffs:
            pending: list[ColumnElement[bool]] = [
                Call.anonymised_at.is_(None),
                Call.started_at < max(cutoffs.values()),
            ]
            for ids in id_chunks(session, Call.id, pending):
                where: list[ColumnElement[bool]] = [Call.id.in_(ids), Call.anonymised_at.is_(None)]
                anonymised.update(self.erase_now(session, where, reached, scope).erased)
        return SweepResult(connector=self.name, anonymised=dict(anonymised))

    def _unlink(
        self,
        session: Session,
        where: list[ColumnElement[bool]],
        reached: ColumnElement[bool],
        as_of: datetime,
    ) -> int:
        rows = session.execute(
            select(Call.id, Call.end_user_phone, Call.started_at).where(*where, reached)
        ).all()
        changes = [
            {
                "id": row.id,
                "end_user_phone": keyed_hash(self.secret, row.end_user_phone, "pseudonym"),
                "started_at": row.started_at.replace(hour=0, minute=0, second=0, microsecond=0),
                "route": None,
                **dict.fromkeys(LOCATION_COLUMNS),
                "anonymised_at": as_of,
            }
            for row in rows
        ]
        if changes:
            session.execute(update(Call), changes)
        return len(changes)

    def restrict_now(self, session: Session, where: Where, call: FlagInput) -> int:
        customer_account = cast(str, call.scope.customer_account)
        phones = subject_phones(call.scope)
        identities = [Identity(type=IdentityType.PHONE, value=phone) for phone in phones]
        self.restrictions.place_or_lift(session, customer_account, call, identities)
        return _count(session, where, PHONE_NUMBER)


# --- queries -------------------------------------------------------------------------------


def _holding(
    session: Session, where: list[ColumnElement[bool]], category: str
) -> CategoryHolding | None:
    rows = session.execute(
        select(
            Call.country_ended, func.count(), func.min(Call.started_at), func.max(Call.started_at)
        )
        .where(*where, holds(category))
        .group_by(Call.country_ended)
    ).all()
    if not rows:
        return None
    return CategoryHolding(
        category=category,
        records=sum(row[1] for row in rows),
        earliest=min(row[2] for row in rows),
        latest=max(row[3] for row in rows),
        countries_ended=sorted(row[0] for row in rows),
        latest_by_country={row[0]: row[3] for row in rows},
    )


def _count(session: Session, where: list[ColumnElement[bool]], category: str) -> int:
    statement = select(func.count()).select_from(Call).where(*where, holds(category))
    return session.scalar(statement) or 0


def _delete_recordings(
    session: Session, where: list[ColumnElement[bool]], reached: ColumnElement[bool]
) -> int:
    recorded = [*where, reached, holds(CALL_RECORDINGS)]
    refs = list(session.scalars(select(Call.recording_ref).where(*recorded)))
    if not refs:
        return 0
    session.execute(
        update(Call)
        .where(*recorded)
        .values(recording_ref=None)
        .execution_options(synchronize_session=False)
    )
    statement = delete(Recording).where(Recording.ref.in_(refs))
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _clear_location(
    session: Session, where: list[ColumnElement[bool]], reached: ColumnElement[bool]
) -> int:
    statement = (
        update(Call)
        .where(*where, reached, holds(LOCATION_DATA))
        .values(dict.fromkeys(LOCATION_COLUMNS))
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def _export_chunks(
    session: Session, where: list[ColumnElement[bool]]
) -> Iterator[list[dict[str, Any]]]:
    statement = (
        select(Call, Recording)
        .outerjoin(Recording, Call.recording_ref == Recording.ref)
        .where(*where)
        .order_by(Call.started_at, Call.id)
        .execution_options(yield_per=EXPORT_CHUNK_ROWS)
    )
    for partition in session.execute(statement).partitions():
        yield [record for row in partition for record in _records(row[0], row[1])]


def _records(call: Call, recording: Recording | None) -> Iterator[dict[str, Any]]:
    """One export record per category the call holds, joined by ``call_id``."""
    ids = {"call_id": call.id, "customer_account": call.customer_account}
    yield {"category": PHONE_NUMBER, **ids, "phone_number": call.end_user_phone}
    yield {
        "category": TRAFFIC_DATA,
        **ids,
        "direction": call.direction,
        "caller_id": call.caller_id,
        "started_at": call.started_at,
        "duration_s": call.duration_s,
        "status": call.status,
        "route": call.route,
        "country_ended": call.country_ended,
    }
    if any(getattr(call, column) is not None for column in LOCATION_COLUMNS):
        yield {
            "category": LOCATION_DATA,
            **ids,
            **{column: getattr(call, column) for column in LOCATION_COLUMNS},
        }
    if recording is not None:
        yield {
            "category": CALL_RECORDINGS,
            **ids,
            "recording_ref": recording.ref,
            "audio_path": recording.audio_path,
            "size_bytes": recording.size_bytes,
            "recorded_at": recording.recorded_at,
            "transcript": recording.transcript,
        }


# --- rules ---------------------------------------------------------------------------------


def _reached(rules: list[EraseRule]) -> dict[str, ColumnElement[bool]]:
    """Per category, the calls its rules reach (by date, and by country where confined)."""
    return country_conditions("voice", rules, CATEGORIES, Call.started_at, Call.country_ended)


def _any(
    reached: dict[str, ColumnElement[bool]], categories: Iterable[str]
) -> ColumnElement[bool] | None:
    conditions = [reached[c] for c in sorted(categories) if c in reached]
    return or_(*conditions) if conditions else None
