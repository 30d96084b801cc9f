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
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from connectors.kit.connector import PROCESSOR_ACTIVITIES, SubjectConnector, sweep_scope
from connectors.kit.countries import country_holding
from connectors.kit.cutoffs import country_conditions
from connectors.kit.identities import identities_of
from connectors.kit.queries import Held, count_rows, export_partitions
from connectors.kit.reach import Reached, either, in_chunks
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
from dsr.models import Identity, IdentityType

# --- the connector -------------------------------------------------------------------------


class VoiceConnector(SubjectConnector[Where, Reached]):
    name: ClassVar[str] = "voice"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    activities: ClassVar[tuple[str, ...]] = PROCESSOR_ACTIVITIES
    schema = VoiceBase
    operation_log = VoiceOperationLog
    restriction_model = Restriction
    sweeps_countries = True
    marks_treated = True
    holders = staticmethod(locate_holders)

    def subject(self, scope: Scope) -> Where | None:
        phones = subject_phones(scope)
        if not phones or scope.customer_account is None:
            return None
        return subject_where(scope.customer_account, phones)

    def holding(self, session: Session, subject: Where, category: str) -> CategoryHolding | None:
        part = Held(Call.started_at, [*subject, holds(category)])
        return country_holding(session, category, part, Call.country_ended)

    def export_chunks(self, session: Session, subject: Where) -> Iterator[list[dict[str, Any]]]:
        statement = (
            select(Call, Recording)
            .outerjoin(Recording, Call.recording_ref == Recording.ref)
            .where(*subject)
            .order_by(Call.started_at, Call.id)
        )
        return export_partitions(session, statement, lambda row: _records(*row), rows=True)

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
        """Each category as declared (``voice_store.TREATMENTS``), through the kit's
        treatments: recordings and location where their rules or a link category's reach,
        then the link."""
        erased: dict[str, int] = {}
        for category, clear in (
            (CALL_RECORDINGS, self._delete_recordings),
            (LOCATION_DATA, self._clear_location),
        ):
            condition = either(reached, LINK_CATEGORIES | {category})
            cleared = 0 if condition is None else clear(session, where, condition, scope.as_of)
            if category in reached or cleared:
                erased[category] = cleared
        link = either(reached, LINK_CATEGORIES)
        if link is not None:
            links = sorted(LINK_CATEGORIES)
            unlinked = self.treat.apply(session, "calls", links, [*where, link], scope.as_of)
            erased.update(dict.fromkeys(links, unlinked))
        retained = {category: _count(session, where, category) for category in reached}
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """Anonymise every customer's records past their retention, as ``erase`` would."""
        reached, scope = _reached(call.rules), sweep_scope(call)
        anonymised: Counter[str] = Counter(dict.fromkeys(cutoffs, 0))
        if cutoffs:
            pending = [Call.anonymised_at.is_(None), Call.started_at < max(cutoffs.values())]

            def erase(chunk: ColumnElement[bool]) -> dict[str, int]:
                where = [chunk, Call.anonymised_at.is_(None)]
                return self.erase_now(session, where, reached, scope).erased

            in_chunks(session, Call.id, pending, erase, anonymised)
        return SweepResult(connector=self.name, anonymised=dict(anonymised))

    def _delete_recordings(
        self, session: Session, where: Where, reached: ColumnElement[bool], as_of: datetime
    ) -> int:
        """The reached calls' recordings deleted, the calls no longer pointing to them."""
        recorded = [*where, reached, holds(CALL_RECORDINGS)]
        refs = list(session.scalars(select(Call.recording_ref).where(*recorded)))
        if not refs:
            return 0
        self.treat.treat_columns(session, "calls", [CALL_RECORDINGS], recorded, as_of)
        gone = [Recording.ref.in_(refs)]
        return self.treat.delete_rows(session, "recordings", [CALL_RECORDINGS], gone)

    def _clear_location(
        self, session: Session, where: Where, reached: ColumnElement[bool], as_of: datetime
    ) -> int:
        located = [*where, reached, holds(LOCATION_DATA)]
        return self.treat.apply(session, "calls", [LOCATION_DATA], located, as_of)

    def restrict_now(self, session: Session, where: Where, call: FlagInput) -> int:
        customer_account = cast(str, call.scope.customer_account)
        identities = identities_of(IdentityType.PHONE, subject_phones(call.scope))
        self.restrictions.place_or_lift(session, customer_account, call, identities)
        return _count(session, where, PHONE_NUMBER)


def _count(session: Session, where: Where, category: str) -> int:
    return count_rows(session, Call, [*where, holds(category)])


def _reached(rules: list[EraseRule]) -> Reached:
    """Per category, the calls its rules reach (by date, and by country where confined)."""
    return country_conditions("voice", rules, CATEGORIES, Call.started_at, Call.country_ended)


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
