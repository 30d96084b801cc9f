"""The Email connector (SparkPost) on its seeded store: discover, access, erase by rule
(lapsed recipients pseudonymised, older sends and events stripped), rectify, and the sweep."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import pytest

from connectors import email
from connectors.kit.errors import ConnectorInputError
from dsr.connector_contract import AccessInput, RectifyInput
from dsr.hashing import keyed_hash
from dsr.models import Correction
from tests.connectors.helpers import (
    CUTOFF,
    EMAIL,
    NOW,
    SECRET,
    assert_holding,
    assert_swept_once,
    by_id,
    changed_ids,
    day,
    marks,
    sweep_call,
    utc,
)
from tests.connectors.stores import Stores, erase_by_rule, holding_map


def email_rows(stores: Stores, customer: str, address: str) -> dict[str, list[dict[str, Any]]]:
    entries = stores.query(
        "email",
        "SELECT * FROM recipients WHERE customer_account = ? AND lower(email) = ? ORDER BY id",
        customer,
        address,
    )
    ids = [row["id"] for row in entries]
    sends = stores.query("email", f"SELECT * FROM sends WHERE recipient_id IN ({marks(ids)})", *ids)
    events = stores.query(
        "email", f"SELECT * FROM events WHERE recipient_id IN ({marks(ids)})", *ids
    )
    return {"recipients": entries, "sends": sends, "events": events}


def latest_activity(rows: dict[str, list[dict[str, Any]]]) -> dict[int, datetime]:
    latest = {row["id"]: utc(row["created_at"]) for row in rows["recipients"]}
    for table, date in (("sends", "sent_at"), ("events", "occurred_at")):
        for row in rows[table]:
            latest[row["recipient_id"]] = max(latest[row["recipient_id"]], utc(row[date]))
    return latest


# --- discover, access, erase, rectify -----------------------------------------------------


def test_email_discover_counts_and_dates(stores: Stores) -> None:
    subject = stores.subjects["email"]
    mine = email_rows(stores, subject.controller, subject.value(EMAIL))

    holdings = holding_map(stores, "email", subject.scope())

    latest = latest_activity(mine)
    contact = holdings["contact_details"]
    assert contact.records == len(mine["recipients"])
    assert contact.earliest == min(utc(r["created_at"]) for r in mine["recipients"])
    assert contact.latest == max(latest.values())
    segments = [utc(r["created_at"]) for r in mine["recipients"] if r["segment_data"]]
    assert ("segment_data" in holdings) == bool(segments)
    if segments:
        assert_holding(holdings["segment_data"], segments)
    assert_holding(holdings["usage_and_device"], [utc(r["occurred_at"]) for r in mine["events"]])
    content = [utc(r["sent_at"]) for r in mine["sends"] if r["subject"] or r["body"]]
    assert_holding(holdings["message_content"], content)


def test_email_access_exports_only_the_subjects_records_of_that_customer(stores: Stores) -> None:
    subject = stores.subjects["email"]
    mine = email_rows(stores, subject.controller, subject.value(EMAIL))
    elsewhere = email_rows(stores, subject.others[0], subject.value(EMAIL))
    assert elsewhere["recipients"], "the same address must be another customer's too"

    result = stores.connectors["email"].access(AccessInput(scope=subject.scope()))

    assert result.blob_ref == "blob:exports/REQ-0001/email.jsonl"
    records = stores.export(result.blob_ref)
    by_category = defaultdict(list)
    for record in records:
        by_category[record["category"]].append(record)
    assert {c: len(r) for c, r in by_category.items()} == result.records
    assert [r["recipient_id"] for r in by_category["contact_details"]] == [
        row["id"] for row in mine["recipients"]
    ]
    assert {r["customer_account"] for r in by_category["contact_details"]} == {subject.controller}
    assert {r["send_id"] for r in by_category["message_content"]} == {
        row["id"] for row in mine["sends"] if row["subject"] or row["body"]
    }
    assert {r["event_id"] for r in by_category["usage_and_device"]} == {
        row["id"] for row in mine["events"]
    }
    foreign = {row["id"] for row in elsewhere["recipients"]}
    assert not foreign & {record["recipient_id"] for record in records}


def test_email_erase_by_rule_anonymises_older_records_and_keeps_newer_and_others(
    stores: Stores,
) -> None:
    subject = stores.subjects["email"]
    address = subject.value(EMAIL)
    mine = email_rows(stores, subject.controller, address)
    elsewhere = {c: email_rows(stores, c, address) for c in subject.others}
    latest = latest_activity(mine)
    lapsed = [r for r in mine["recipients"] if latest[r["id"]] < CUTOFF]
    active = [r for r in mine["recipients"] if latest[r["id"]] >= CUTOFF]
    old_sends = [s for s in mine["sends"] if utc(s["sent_at"]) < CUTOFF]
    new_sends = [s for s in mine["sends"] if utc(s["sent_at"]) >= CUTOFF]
    old_events = [e for e in mine["events"] if utc(e["occurred_at"]) < CUTOFF]
    new_events = [e for e in mine["events"] if utc(e["occurred_at"]) >= CUTOFF]
    assert lapsed and active and old_sends and new_sends
    assert all(rows["recipients"] for rows in elsewhere.values())

    def older(entry: dict[str, Any]) -> bool:
        return entry in lapsed or utc(entry["created_at"]) < CUTOFF

    before = stores.dump("email")

    result = erase_by_rule(stores, "email")

    assert result.erased == {
        "contact_details": len(lapsed),
        "segment_data": sum(1 for r in mine["recipients"] if r["segment_data"] and older(r)),
        "usage_and_device": len(old_events),
        "message_content": sum(1 for s in old_sends if s["subject"] or s["body"]),
    }
    assert result.retained == {
        "contact_details": len(active),
        "segment_data": sum(1 for r in active if r["segment_data"] and not older(r)),
        "usage_and_device": len(new_events),
        "message_content": sum(1 for s in new_sends if s["subject"] or s["body"]),
    }
    after = stores.dump("email")
    pseudonym = keyed_hash(SECRET, address, "pseudonym")
    for row in stores.query(
        "email",
        f"SELECT * FROM recipients WHERE id IN ({marks(lapsed)})",
        *[r["id"] for r in lapsed],
    ):
        assert (row["email"], row["name"], row["segment_data"]) == (pseudonym, None, None)
        assert row["anonymised_at"] is not None
    for row in stores.query(
        "email",
        f"SELECT * FROM recipients WHERE id IN ({marks(active)})",
        *[r["id"] for r in active],
    ):
        assert row["email"].lower() == address and row["anonymised_at"] is None
    for send in old_sends:
        assert after["sends"][send["id"]][2:] == (send["campaign"], None, None, send["sent_at"])
    for event in old_events:
        row = stores.query("email", "SELECT * FROM events WHERE id = ?", event["id"])[0]
        assert (row["type"], utc(row["occurred_at"])) == (event["type"], day(event["occurred_at"]))
        assert all(row[field] is None for field in email.USAGE_FIELDS)
    assert all(after["sends"][s["id"]] == before["sends"][s["id"]] for s in new_sends)
    assert all(after["events"][e["id"]] == before["events"][e["id"]] for e in new_events)
    assert {c: email_rows(stores, c, address) for c in subject.others} == elsewhere
    changed = changed_ids(before, after)
    assert changed["recipients"] <= {r["id"] for r in mine["recipients"]}
    assert changed["sends"] <= {s["id"] for s in mine["sends"]}
    assert changed["events"] <= {e["id"] for e in mine["events"]}
    holdings = holding_map(stores, "email", subject.scope("REQ-0002"))
    assert holdings["contact_details"].records == len(active)


def test_email_rectify_corrects_name_and_address_of_that_customer_only(stores: Stores) -> None:
    subject = stores.subjects["email"]
    address = subject.value(EMAIL)
    mine = email_rows(stores, subject.controller, address)["recipients"]
    elsewhere = {c: email_rows(stores, c, address) for c in subject.others}
    corrections = [
        Correction(field="name", value="Corrected Name"),
        Correction(field="email", value="corrected.address@example.org"),
        Correction(field="job_title", value="Baker"),
    ]

    result = stores.connectors["email"].rectify(
        RectifyInput(scope=subject.scope(), corrections=corrections)
    )

    assert result.updated == {"name": sum(1 for r in mine if r["name"]), "email": len(mine)}
    assert result.unsupported_fields == ["job_title"]
    rows = stores.query(
        "email", f"SELECT * FROM recipients WHERE id IN ({marks(mine)})", *[r["id"] for r in mine]
    )
    assert {r["email"] for r in rows} == {"corrected.address@example.org"}
    assert {r["name"] for r in rows} <= {"Corrected Name", None}
    assert {c: email_rows(stores, c, address) for c in subject.others} == elsewhere
    assert holding_map(stores, "email", subject.scope("REQ-0002")) == {}
    with pytest.raises(ConnectorInputError, match="corrected email is malformed"):
        stores.connectors["email"].rectify(
            RectifyInput(
                scope=subject.scope("REQ-0003"),
                corrections=[Correction(field="email", value="not-an-address")],
            )
        )


# --- sweep --------------------------------------------------------------------------------


@pytest.mark.usefixtures("small_chunks")
def test_email_sweep_anonymises_every_customers_old_records(stores: Stores) -> None:
    recipients = by_id(
        stores.query("email", "SELECT * FROM recipients WHERE anonymised_at IS NULL")
    )
    live = set(recipients)
    sends = [s for s in stores.query("email", "SELECT * FROM sends") if s["recipient_id"] in live]
    events = [
        e
        for e in stores.query("email", "SELECT * FROM events WHERE anonymised_at IS NULL")
        if e["recipient_id"] in live
    ]
    latest = latest_activity(
        {"recipients": list(recipients.values()), "sends": sends, "events": events}
    )
    lapsed = {i for i in live if latest[i] < CUTOFF}
    segments = {
        i
        for i, r in recipients.items()
        if r["segment_data"] is not None and utc(r["created_at"]) < CUTOFF
    }
    old_sends = {
        s["id"] for s in sends if utc(s["sent_at"]) < CUTOFF and (s["subject"] or s["body"])
    }
    old_events = {e["id"] for e in events if utc(e["occurred_at"]) < CUTOFF}
    assert len({recipients[i]["customer_account"] for i in lapsed}) > 1
    assert len(lapsed) < len(live) and old_sends and old_events
    before = stores.dump("email")
    call = sweep_call(email.CATEGORIES)

    result = stores.connectors["email"].sweep(call)

    assert result.anonymised == {
        "contact_details": len(lapsed),
        "segment_data": len(segments),
        "usage_and_device": len(old_events),
        "message_content": len(old_sends),
    }
    after = stores.dump("email")
    changed = changed_ids(before, after)
    assert changed == {"recipients": lapsed | segments, "sends": old_sends, "events": old_events}
    for row in stores.query("email", "SELECT * FROM recipients"):
        if row["id"] in lapsed:
            was = recipients[row["id"]]["email"].lower()
            assert row["email"] == keyed_hash(SECRET, was, "pseudonym")
            assert row["name"] is row["segment_data"] is None
            assert utc(row["anonymised_at"]) == NOW
        elif row["id"] in segments:
            assert row["segment_data"] is None and row["anonymised_at"] is None
    for send_id in old_sends:
        assert after["sends"][send_id][3:5] == (None, None)
    for event in stores.query(
        "email", f"SELECT * FROM events WHERE id IN ({marks(list(old_events))})", *old_events
    ):
        assert all(event[field] is None for field in email.USAGE_FIELDS)
        assert utc(event["occurred_at"]) == day(event["occurred_at"])
        assert utc(event["anonymised_at"]) == NOW
    assert_swept_once(stores.connectors["email"], stores.db("email"), call, result)

