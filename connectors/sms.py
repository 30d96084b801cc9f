"""SMS connector: end users' messages, held for the customers that sent or received them.

The customer is the controller of its end users' data and the group its processor, so every
lookup is confined to one customer account: without ``scope.customer_account`` the connector
finds nothing, and it never searches across customers.

Erasure anonymises rather than deletes, per category:
- ``message_content``: the content is cleared;
- ``location_data``: cell id, latitude and longitude are cleared;
- ``phone_number`` and ``traffic_data``: the record is cut loose from the person. The number is
  replaced by a keyed-hash pseudonym (statistics still count distinct numbers), the operator
  and route are cleared, ``sent_at`` is cut to the day, and content and location go too (a
  record that can no longer be found for its subject must not keep what could identify them).
  Day, direction, status, segments, sender and country ended stay, for statistics and the
  records of the customer. The row gets ``anonymised_at`` and is no longer the subject's.

The store (the ``messages`` table, the categories and their treatments, the subject's rows) is
``connectors.sms_store``; what it exports is re-exported here.
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
from connectors.sms_store import (
    CATEGORIES,
    LINK_CATEGORIES,
    LOCATION_DATA,
    MESSAGE_CONTENT,
    PHONE_NUMBER,
    TRAFFIC_DATA,
    TREATMENTS,
    Message,
    Restriction,
    SmsBase,
    SmsOperationLog,
    Where,
    holds,
    locate_holders,
    subject_messages,
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

__all__ = [
    "CATEGORIES",
    "Message",
    "SmsBase",
    "SmsConnector",
    "holds",
    "subject_messages",
    "subject_where",
]


class SmsConnector(SubjectConnector[Where, Reached]):
    name: ClassVar[str] = "sms"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    activities: ClassVar[tuple[str, ...]] = PROCESSOR_ACTIVITIES
    schema = SmsBase
    operation_log = SmsOperationLog
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
        part = Held(Message.sent_at, [*subject, holds(category)])
        return country_holding(session, category, part, Message.country_ended)

    def export_chunks(self, session: Session, subject: Where) -> Iterator[list[dict[str, Any]]]:
        statement = select(Message).where(*subject).order_by(Message.sent_at, Message.id)
        return export_partitions(session, statement, _records)

    def reach(self, rules: list[EraseRule]) -> Reached:
        return _reached(rules)

    def is_restricted(self, customer_account: str, phone: str) -> bool:
        """Whether processing of this end user's messages is restricted for this customer."""
        identity = Identity(type=IdentityType.PHONE, value=phone)
        return is_restricted(self.store, self.restrictions, customer_account, identity)

    # --- erase, sweep and restrict, inside the operation's transaction ---------------------

    def erase_now(
        self, session: Session, where: Where, reached: Reached, scope: Scope
    ) -> EraseResult:
        """Each category as declared (``sms_store.TREATMENTS``), through the kit's treatments:
        content and location where their rules or a link category's reach, then the link."""
        erased: dict[str, int] = {}
        for category in (MESSAGE_CONTENT, LOCATION_DATA):
            condition = either(reached, LINK_CATEGORIES | {category})
            cleared = 0 if condition is None else self.treat.apply(
                session, "messages", [category], [*where, condition, holds(category)], scope.as_of
            )
            if category in reached or cleared:
                erased[category] = cleared
        link = either(reached, LINK_CATEGORIES)
        if link is not None:
            links = sorted(LINK_CATEGORIES)
            unlinked = self.treat.apply(session, "messages", links, [*where, link], scope.as_of)
            erased.update(dict.fromkeys(links, unlinked))
        retained = {category: _count(session, where, category) for category in reached}
        return EraseResult(connector=self.name, erased=erased, retained=retained)

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """Anonymise every customer's messages past their retention, as ``erase`` would."""
        reached, scope = _reached(call.rules), sweep_scope(call)
        anonymised: Counter[str] = Counter(dict.fromkeys(cutoffs, 0))
        if cutoffs:
            pending = [Message.anonymised_at.is_(None), Message.sent_at < max(cutoffs.values())]

            def erase(chunk: ColumnElement[bool]) -> dict[str, int]:
                where = [chunk, Message.anonymised_at.is_(None)]
                return self.erase_now(session, where, reached, scope).erased

            in_chunks(session, Message.id, pending, erase, anonymised)
        return SweepResult(connector=self.name, anonymised=dict(anonymised))

    def restrict_now(self, session: Session, where: Where, call: FlagInput) -> int:
        customer_account = cast(str, call.scope.customer_account)
        identities = identities_of(IdentityType.PHONE, subject_phones(call.scope))
        self.restrictions.place_or_lift(session, customer_account, call, identities)
        return _count(session, where, PHONE_NUMBER)


def _count(session: Session, where: Where, category: str) -> int:
    return count_rows(session, Message, [*where, holds(category)])


def _reached(rules: list[EraseRule]) -> Reached:
    """Per category, the messages its rules reach (by date, and by country where confined)."""
    return country_conditions("sms", rules, CATEGORIES, Message.sent_at, Message.country_ended)


def _records(message: Message) -> Iterator[dict[str, Any]]:
    """One export record per category the message holds, joined by ``message_id``."""
    ids = {"message_id": message.id, "customer_account": message.customer_account}
    yield {"category": PHONE_NUMBER, **ids, "phone_number": message.end_user_phone}
    yield {
        "category": TRAFFIC_DATA,
        **ids,
        "direction": message.direction,
        "sender_id": message.sender_id,
        "sent_at": message.sent_at,
        "status": message.status,
        "operator": message.operator,
        "route": message.route,
        "segments": message.segments,
        "country_ended": message.country_ended,
    }
    if any(v is not None for v in (message.cell_id, message.latitude, message.longitude)):
        yield {
            "category": LOCATION_DATA,
            **ids,
            "cell_id": message.cell_id,
            "latitude": message.latitude,
            "longitude": message.longitude,
        }
    if message.content is not None:
        yield {"category": MESSAGE_CONTENT, **ids, "content": message.content}
