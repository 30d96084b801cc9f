"""Possible duplicates, found in the register's ``request_subjects`` index (a SQLite file, no
Temporal): the same subject asking for one of the same rights within the 30 days before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from dsr import register
from dsr.database import make_engine
from dsr.models import RightsRequest, parse_request
from dsr.register import RequestSubjectRecord
from dsr.serverkeys import ServerKeys

SECRET = ServerKeys(b"duplicates-test-key-3a9e1c7f5b2d8e4a6c0f")
SUBJECT = "ada.lovelace@example.com"
OTHER_SUBJECT = "charles.babbage@example.com"
T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def _request(
    request_id: str,
    days_before: float = 0,
    rights: tuple[str, ...] = ("erasure",),
    emails: tuple[str, ...] = (SUBJECT,),
) -> RightsRequest:
    return parse_request(
        {
            "request_id": request_id,
            "rights": list(rights),
            "identities": [{"type": "email", "value": email} for email in emails],
            "jurisdiction": "EU",
            "channel": "email",
            "requester": {"kind": "subject", "email": emails[0]},
            "received_at": (T0 - timedelta(days=days_before)).isoformat(),
        }
    )


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'dsr.db'}")


def _intake(engine: Engine, request: RightsRequest) -> list[str]:
    return register.record_intake(engine, request, SECRET, request.received_at)


def test_the_same_subject_and_right_within_30_days_only(engine: Engine) -> None:
    for earlier in (
        _request("R-SAME-10", days_before=10),
        _request("R-SAME-30", days_before=30),  # the window's edge is in it
        _request("R-SAME-31", days_before=31),
        _request("R-OTHER-RIGHT", days_before=5, rights=("access",)),
        _request("R-OTHER-SUBJECT", days_before=5, emails=(OTHER_SUBJECT,)),
        _request("R-LATER", days_before=-1),  # received after: not an earlier request
    ):
        _intake(engine, earlier)
    this = _request("R-THIS", rights=("erasure", "portability"))

    assert _intake(engine, this) == ["R-SAME-30", "R-SAME-10"]  # by receipt, oldest first
    assert _intake(engine, this) == ["R-SAME-30", "R-SAME-10"], "a retry: not itself"
    with Session(engine) as session:
        assert register.possible_duplicates(session, SECRET, this) == ["R-SAME-30", "R-SAME-10"]
        assert register.possible_duplicates(
            session, SECRET, _request("R-X", rights=("access",))
        ) == ["R-OTHER-RIGHT"]
        assert register.possible_duplicates(
            session, SECRET, _request("R-Y", emails=(OTHER_SUBJECT,))
        ) == ["R-OTHER-SUBJECT"]


def test_a_request_sharing_several_identities_is_listed_once(engine: Engine) -> None:
    both = (SUBJECT, OTHER_SUBJECT)
    _intake(engine, _request("R-FIRST", days_before=2, emails=both))
    _intake(engine, _request("R-FIRST", days_before=2, emails=both))  # a retry: added once

    assert _intake(engine, _request("R-AGAIN", emails=both)) == ["R-FIRST"]
    with Session(engine) as session:
        rows = session.scalar(
            select(func.count())
            .select_from(RequestSubjectRecord)
            .where(RequestSubjectRecord.request_id == "R-FIRST")
        )
    assert rows == 2, "one row per subject hash"
