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

from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from connectors.kit.communications import CommunicationsConnector, Where
from connectors.kit.queries import export_partitions
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
    holds,
)
from dsr.connector_contract import Treatment


class VoiceConnector(CommunicationsConnector):
    name: ClassVar[str] = "voice"
    categories: ClassVar[tuple[str, ...]] = CATEGORIES
    treatments: ClassVar[tuple[Treatment, ...]] = TREATMENTS
    schema = VoiceBase
    operation_log = VoiceOperationLog
    restriction_model = Restriction
    communication = Call
    date_column = "started_at"
    link_categories = LINK_CATEGORIES

    def holds(self, category: str) -> ColumnElement[bool]:
        return holds(category)

    def export_chunks(self, session: Session, subject: Where) -> Iterator[list[dict[str, Any]]]:
        statement = (
            select(Call, Recording)
            .outerjoin(Recording, Call.recording_ref == Recording.ref)
            .where(*subject)
            .order_by(Call.started_at, Call.id)
        )
        return export_partitions(session, statement, lambda row: _records(*row), rows=True)

    def clear(self, session: Session, category: str, reached: Where, as_of: datetime) -> int:
        """A recording is deleted, and its calls no longer point to it."""
        if category != CALL_RECORDINGS:
            return super().clear(session, category, reached, as_of)
        recorded = [*reached, holds(CALL_RECORDINGS)]
        refs = list(session.scalars(select(Call.recording_ref).where(*recorded)))
        if not refs:
            return 0
        self.treat.treat_columns(session, "calls", [CALL_RECORDINGS], recorded, as_of)
        gone = [Recording.ref.in_(refs)]
        return self.treat.delete_rows(session, "recordings", [CALL_RECORDINGS], gone)


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
