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

from collections.abc import Iterator
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from connectors.kit.communications import CommunicationsConnector, Where
from connectors.kit.queries import export_partitions
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
    holds,
    subject_messages,
    subject_where,
)
from dsr.connector_contract import Treatment

__all__ = [
    "CATEGORIES",
    "Message",
    "SmsBase",
    "SmsConnector",
    "holds",
    "subject_messages",
    "subject_where",
]


class SmsConnector(CommunicationsConnector):
    name: ClassVar[str] = "sms"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    schema = SmsBase
    operation_log = SmsOperationLog
    restriction_model = Restriction
    communication = Message
    date_column = "sent_at"
    link_categories = LINK_CATEGORIES

    def holds(self, category: str) -> ColumnElement[bool]:
        return holds(category)

    def export_chunks(self, session: Session, subject: Where) -> Iterator[list[dict[str, Any]]]:
        statement = select(Message).where(*subject).order_by(Message.sent_at, Message.id)
        return export_partitions(session, statement, _records)


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
