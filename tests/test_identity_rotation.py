"""The identity index across a change of server secret: a legal hold and a suppression entry
made under the old secret still keep and still suppress after ``DSR_HMAC_KEY`` changes (the
old one kept in ``DSR_HMAC_KEY_PREVIOUS``), a hold placed after the change covers a request
registered before it, and a request is still seen as a possible duplicate of one made before.
Without the old secret none of it matches: it is the previous key that does it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.testing import ActivityEnvironment

from activities.legal_hold import HoldCheck, LegalHoldActivities
from connectors.marketing import MarketingConnector, ProspectRow, Suppression
from dsr import register
from dsr.blobstore import LocalBlobStore
from dsr.connector_contract import CategoryHolding, Discovery, FlagInput, Scope
from dsr.database import make_engine
from dsr.holds import HoldSpec, LegalHoldRecord, place_hold
from dsr.models import Identity, IdentityType, RightsRequest, parse_request
from dsr.settings import Settings

OLD = "first-server-key-0b7e3d9a5c1f8e2b6d4a"
NEW = "second-server-key-8c2f6a1e9d3b7f5c0a4e"
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
PHONE = "+447700900123"
EMAIL = "ines.moreau@example.com"


def settings(folder: Path, current: str, *previous: str) -> Settings:
    return Settings(data_dir=folder, hmac_key=current, hmac_key_previous=list(previous))


def erasure(request_id: str) -> RightsRequest:
    return parse_request({
        "request_id": request_id, "rights": ["erasure"], "jurisdiction": "EU",
        "channel": "email", "identities": [{"type": "phone", "value": PHONE}],
        "requester": {"kind": "subject", "email": EMAIL},
        "received_at": (NOW - timedelta(days=1)).isoformat()}, NOW)


def held(current: Settings, request: RightsRequest) -> list[str]:
    """The holds that keep the request's SMS traffic data, by the hold check."""
    old = NOW - timedelta(days=400)
    discovery = Discovery(connector="sms", holdings=[
        CategoryHolding(category="traffic_data", records=2, earliest=old, latest=old)])
    check = HoldCheck(request_id=request.request_id, discoveries=[discovery], as_of=NOW,
                      identities=request.identities)
    activities = LegalHoldActivities(current, make_engine(current.app_database_url))
    plan = ActivityEnvironment().run(activities.assess, check)
    return [part.rule_id for part in plan.retained if part.rule_id.startswith("HOLD-")]


def hold(current: Settings) -> str:
    spec = HoldSpec.model_validate({"kind": "litigation", "reason": "case 12",
                                    "placed_by": "counsel",
                                    "identity": {"type": "phone", "value": PHONE}})
    return place_hold(make_engine(current.app_database_url), current.secret, spec, NOW).hold_id


def test_a_hold_keeps_what_it_covers_across_the_change_either_way(tmp_path: Path) -> None:
    before = settings(tmp_path, OLD)
    engine = make_engine(before.app_database_url)
    old_hold = hold(before)
    after, dropped = settings(tmp_path, NEW, OLD), settings(tmp_path, NEW)

    registered_after = erasure("REQ-AFTER")
    register.record_intake(engine, registered_after, after.server_keys, NOW)
    assert held(after, registered_after) == [old_hold], "an old hold, a new request"
    assert held(dropped, registered_after) == [], "without the old secret it would not match"

    registered_before = erasure("REQ-BEFORE")
    register.record_intake(engine, registered_before, before.server_keys, NOW)
    with Session(engine) as session, session.begin():  # the old hold ends, a new one begins
        record = session.get(LegalHoldRecord, old_hold)
        assert record is not None
        record.released_at = NOW - timedelta(hours=1)
    new_hold = hold(after)
    assert held(after, registered_before) == [new_hold], "a new hold, an old request"


def test_a_request_after_the_change_is_seen_as_a_duplicate_of_one_before(
        tmp_path: Path) -> None:
    before, after = settings(tmp_path, OLD), settings(tmp_path, NEW, OLD)
    engine = make_engine(before.app_database_url)
    register.record_intake(engine, erasure("REQ-FIRST"), before.server_keys, NOW)
    second = erasure("REQ-SECOND")
    assert register.record_intake(engine, second, after.server_keys, NOW) == ["REQ-FIRST"]
    with Session(engine) as session:
        alone = register.possible_duplicates(session, settings(tmp_path, NEW).server_keys,
                                             erasure("REQ-THIRD"))
    assert alone == ["REQ-SECOND"], "without the old secret only the second is found"


def test_an_opt_out_made_under_the_old_secret_is_still_honoured(tmp_path: Path) -> None:
    url, blobs = f"sqlite:///{tmp_path / 'marketing.db'}", LocalBlobStore(tmp_path / "blobs")
    identity = Identity(type=IdentityType.EMAIL, value=EMAIL)
    scope = Scope(request_id="REQ-OPT", identities=[identity], as_of=NOW)
    MarketingConnector(url, blobs, OLD.encode()).marketing_opt_out(FlagInput(scope=scope))

    after = MarketingConnector(url, blobs, NEW.encode(), previous_secrets=[OLD.encode()])
    assert after.is_suppressed(EMAIL.upper())
    rows = [ProspectRow(email=email, source="web_form", source_detail="newsletter form",
                        created_at=NOW) for email in (EMAIL, "someone@example.org")]
    assert after.import_prospects(rows) == 1
    after.marketing_opt_out(FlagInput(scope=scope.model_copy(update={"request_id": "REQ-2"})))
    with after.store.reading() as session:
        reasons = list(session.scalars(select(Suppression.request_id)))
    assert reasons == ["REQ-OPT"], "the first reason stays"

    dropped = MarketingConnector(url, blobs, NEW.encode())
    assert not dropped.is_suppressed(EMAIL), "it is the previous key that keeps the opt-out"
