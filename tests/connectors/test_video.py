"""The Video connector (24sessions; the dataset connector of ``connectors/datasets/video.yaml``)
on its seeded store: discover, access, erase by rule of visitors and their meetings' details,
rectify, and the sweep, each checked in the store's file."""

from __future__ import annotations

from typing import Any

import pytest

from dsr.connector_contract import AccessInput, RectifyInput
from dsr.models import Correction
from tests.connectors.helpers import (
    CUTOFF,
    EMAIL,
    NOW,
    PHONE,
    Subject,
    assert_holding,
    assert_swept_once,
    changed_ids,
    marks,
    sweep_call,
    utc,
)
from tests.connectors.stores import Stores, erase_by_rule, holding_map

CATEGORIES = ("meeting_details", "visitor_details", "recordings")
DETAIL_FIELDS = ("description", "review", "summary")
VISITOR_FIELDS = ("name", "email", "phone", "ip")


def video_visits(stores: Stores, customer: str, subject: Subject) -> list[dict[str, Any]]:
    return stores.query(
        "video",
        "SELECT v.*, m.scheduled_at, m.description, m.review, m.summary, m.recording_ref "
        "FROM visitors v JOIN meetings m ON m.id = v.meeting_id "
        "WHERE v.customer_account = ? AND (lower(v.email) = ? OR v.phone = ?) ORDER BY v.id",
        customer,
        subject.value(EMAIL),
        subject.value(PHONE),
    )


def has_details(row: dict[str, Any]) -> bool:
    return any(row[field] is not None for field in DETAIL_FIELDS)


# --- discover, access, erase, rectify -----------------------------------------------------


def test_video_discover_counts_and_dates(stores: Stores) -> None:
    subject = stores.subjects["video"]
    visits = video_visits(stores, subject.controller, subject)

    holdings = holding_map(stores, "video", subject.scope())

    assert_holding(holdings["visitor_details"], [utc(v["scheduled_at"]) for v in visits])
    detailed = [utc(v["scheduled_at"]) for v in visits if has_details(v)]
    assert_holding(holdings["meeting_details"], detailed)
    recorded = [utc(v["scheduled_at"]) for v in visits if v["recording_ref"]]
    assert ("recordings" in holdings) == bool(recorded)
    if recorded:
        assert_holding(holdings["recordings"], recorded)


def test_video_access_exports_only_the_subjects_visits_of_that_customer(stores: Stores) -> None:
    subject = stores.subjects["video"]
    visits = video_visits(stores, subject.controller, subject)
    elsewhere = video_visits(stores, subject.others[0], subject)
    assert elsewhere

    result = stores.connectors["video"].access(AccessInput(scope=subject.scope()))

    records = stores.export(result.blob_ref or "")
    visitors = [r["record"] for r in records if r["category"] == "visitor_details"]
    exported = sorted((r["id"], r["name"], r["email"], r["phone"]) for r in visitors)
    assert exported == [(v["id"], v["name"], v["email"], v["phone"]) for v in visits]
    dates = {utc(r["meetings.scheduled_at"]) for r in visitors}
    assert dates == {utc(v["scheduled_at"]) for v in visits}, "a visit dated by its meeting"
    recordings = {r["record"]["recording_ref"] for r in records if r["category"] == "recordings"}
    assert recordings == {v["recording_ref"] for v in visits if v["recording_ref"]}
    assert result.records["meeting_details"] == sum(1 for v in visits if has_details(v))
    meetings = {r["record"]["id"] for r in records if r["table"] == "meetings"}
    assert meetings <= {v["meeting_id"] for v in visits}
    assert not {v["meeting_id"] for v in elsewhere} & meetings


def test_video_erase_by_rule_anonymises_older_visits_and_keeps_newer_and_others(
    stores: Stores,
) -> None:
    subject = stores.subjects["video"]
    visits = video_visits(stores, subject.controller, subject)
    older = [v for v in visits if utc(v["scheduled_at"]) < CUTOFF]
    newer = [v for v in visits if utc(v["scheduled_at"]) >= CUTOFF]
    elsewhere = {c: video_visits(stores, c, subject) for c in subject.others}
    assert older and newer and all(elsewhere.values())
    before = stores.dump("video")

    result = erase_by_rule(stores, "video")

    assert result.erased == {
        "visitor_details": len(older),
        "meeting_details": sum(1 for v in older if has_details(v)),
        "recordings": sum(1 for v in older if v["recording_ref"]),
    }
    assert result.retained == {
        "visitor_details": len(newer),
        "meeting_details": sum(1 for v in newer if has_details(v)),
        "recordings": sum(1 for v in newer if v["recording_ref"]),
    }
    after = stores.dump("video")
    for visit in older:
        row = stores.query("video", "SELECT * FROM visitors WHERE id = ?", visit["id"])[0]
        assert all(row[field] is None for field in VISITOR_FIELDS)
        assert row["anonymised_at"] is not None and row["meeting_id"] == visit["meeting_id"]
        meeting = stores.query("video", "SELECT * FROM meetings WHERE id = ?", visit["meeting_id"])
        assert meeting[0]["scheduled_at"] == visit["scheduled_at"]
        assert not has_details(meeting[0]) and meeting[0]["recording_ref"] is None
    for visit in newer:
        assert after["visitors"][visit["id"]] == before["visitors"][visit["id"]]
        assert after["meetings"][visit["meeting_id"]] == before["meetings"][visit["meeting_id"]]
    assert {c: video_visits(stores, c, subject) for c in subject.others} == elsewhere
    changed = changed_ids(before, after)
    assert changed["visitors"] <= {v["id"] for v in older}
    assert changed["meetings"] <= {v["meeting_id"] for v in older}


def test_video_rectify_corrects_visitor_details_where_held(stores: Stores) -> None:
    subject = stores.subjects["video"]
    visits = video_visits(stores, subject.controller, subject)
    corrections = [
        Correction(field="name", value="Corrected Name"),
        Correction(field="phone", value="+447700900999"),
    ]

    result = stores.connectors["video"].rectify(
        RectifyInput(scope=subject.scope(), corrections=corrections)
    )

    with_phone = [v for v in visits if v["phone"]]
    assert result.updated == {"name": len(visits), "phone": len(with_phone)}
    rows = stores.query(
        "video", f"SELECT * FROM visitors WHERE id IN ({marks(visits)})", *[v["id"] for v in visits]
    )
    assert {r["name"] for r in rows} == {"Corrected Name"}
    assert sorted(r["id"] for r in rows if r["phone"] == "+447700900999") == sorted(
        v["id"] for v in with_phone
    )


# --- sweep --------------------------------------------------------------------------------


@pytest.mark.usefixtures("small_chunks")
def test_video_sweep_anonymises_every_customers_old_visits(stores: Stores) -> None:
    visits = stores.query(
        "video",
        "SELECT v.*, m.scheduled_at, m.description, m.review, m.summary, m.recording_ref "
        "FROM visitors v JOIN meetings m ON m.id = v.meeting_id WHERE v.anonymised_at IS NULL",
    )
    old = [v for v in visits if utc(v["scheduled_at"]) < CUTOFF]
    meetings = {v["meeting_id"]: v for v in old}
    assert len({v["customer_account"] for v in old}) > 1 and len(old) < len(visits)
    before = stores.dump("video")
    call = sweep_call(CATEGORIES)

    result = stores.connectors["video"].sweep(call)

    assert result.anonymised == {
        "visitor_details": len(old),
        "meeting_details": sum(1 for v in meetings.values() if has_details(v)),
        "recordings": sum(1 for v in meetings.values() if v["recording_ref"]),
    }
    changed = changed_ids(before, stores.dump("video"))
    assert changed["visitors"] == {v["id"] for v in old}
    assert changed["meetings"] == {
        i for i, v in meetings.items() if has_details(v) or v["recording_ref"]
    }
    for visit in old:
        row = stores.query("video", "SELECT * FROM visitors WHERE id = ?", visit["id"])[0]
        assert all(row[field] is None for field in VISITOR_FIELDS)
        assert utc(row["anonymised_at"]) == NOW and row["meeting_id"] == visit["meeting_id"]
        meeting = stores.query("video", "SELECT * FROM meetings WHERE id = ?", visit["meeting_id"])
        assert meeting[0]["scheduled_at"] == visit["scheduled_at"]
        assert not has_details(meeting[0]) and meeting[0]["recording_ref"] is None
    assert_swept_once(stores.connectors["video"], stores.db("video"), call, result)

