"""The rights request at intake: what is refused and why, that no refusal quotes personal data,
that well-formed requests survive serialisation, and who must be verified and how."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dsr.models import (
    Channel,
    Identity,
    IdentityType,
    Jurisdiction,
    Language,
    RequesterKind,
    Right,
    RightsRequest,
    parse_request,
)
from dsr.rights import needs_verification
from dsr.verification import Method, plan_verification
from services.workflow_client import describe_errors
from workflows.models import RequestInput

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
EMAIL = "zora.quill@example.com"
PHONE = "+447700900123"
ACCOUNT = "acct-4711"


def data(**fields: Any) -> dict[str, Any]:
    """A valid subject access request by email, with ``fields`` replacing the defaults."""
    return {
        "request_id": "DSR-T-0001",
        "rights": ["access"],
        "identities": [{"type": "email", "value": EMAIL}],
        "jurisdiction": "EU",
        "channel": "email",
        "requester": {"kind": "subject", "email": EMAIL},
        "received_at": (NOW - timedelta(hours=1)).isoformat(),
    } | fields


def parse(**fields: Any) -> RightsRequest:
    return parse_request(data(**fields), now=NOW)


def refusal(**fields: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        parse(**fields)
    return caught.value


def problems(error: ValidationError) -> dict[str, str]:
    """Field (dotted, "request" for the whole) → message, as the CLI shows them."""
    lines = describe_errors(error).splitlines()
    assert lines[0] == "the request is invalid:"
    return dict(line.strip().split(": ", 1) for line in lines[1:])


def assert_private(error: ValidationError, *values: str) -> None:
    shown = describe_errors(error) + "\n" + str(error) + "\n" + repr(error)
    for value in values:
        assert value not in shown, "a refusal quotes personal data"
    assert "input_value" not in str(error)


# A well-formed request -------------------------------------------------------------------------


def test_a_well_formed_request_is_normalised() -> None:
    request = parse(
        request_id="  DSR-T-0002 ",
        received_at="2026-06-15T13:30:00+02:00",
        identities=[{"type": "email", "value": "  Zora.Quill@Example.com "}],
    )
    assert request.request_id == "DSR-T-0002"
    assert request.received_at == datetime(2026, 6, 15, 11, 30, tzinfo=UTC)
    assert request.received_at.tzinfo is UTC
    assert request.identities[0].value == "Zora.Quill@Example.com"
    assert request.identities[0].normalised == "email:zora.quill@example.com"
    assert request.language is Language.EN and not request.is_child
    assert request.corrections == [] and request.notify_deferred_erasure


def test_the_request_is_frozen_and_its_repr_holds_no_identity() -> None:
    request = parse(identities=[{"type": "phone", "value": PHONE}])
    with pytest.raises(ValidationError):
        request.request_id = "other"  # type: ignore[misc]
    assert PHONE not in repr(request) and EMAIL not in repr(request)
    assert PHONE not in str(request) and EMAIL not in str(request)


def test_verification_is_needed_only_for_rights_that_disclose_or_delete() -> None:
    assert needs_verification(parse(rights=["access"]).rights)
    assert needs_verification(parse(rights=["erasure", "opt_out_sale_sharing"]).rights)
    assert not needs_verification(parse(rights=["opt_out_sale_sharing", "limit_sensitive"]).rights)


def test_only_a_controller_request_is_scoped_to_a_customer() -> None:
    controller = parse(requester={"kind": "controller", "email": EMAIL,
                                  "customer_account": ACCOUNT})
    assert controller.customer_scope == ACCOUNT
    subject = parse(requester={"kind": "subject", "email": EMAIL, "customer_account": ACCOUNT})
    assert subject.customer_scope is None


def test_a_time_in_the_future_is_accepted_within_clock_skew_and_on_replay() -> None:
    assert parse(received_at=(NOW + timedelta(minutes=4)).isoformat())
    future = data(received_at=(NOW + timedelta(days=3)).isoformat())
    # Workflow code re-validates without the intake clock: history must replay.
    assert RightsRequest.model_validate(future).received_at == NOW + timedelta(days=3)


# Refusals: each names the field and the rule, never the value -----------------------------------

BAD_IDENTITIES = [
    ("email", "zora.quill.example.com", "email identity is malformed"),
    ("email", "zora quill@example.com", "email identity is malformed"),
    ("email", "zora@quill@example.com", "email identity is malformed"),
    ("email", "zora\x07quill@example.com", "email identity is malformed"),
    ("email", "zora\x00quill@example.com", "email identity is malformed"),
    ("email", "zora\u0085quill@example.com", "email identity is malformed"),
    ("email", "zora@example", "email identity is malformed"),
    ("phone", "0612345678", "E.164"),
    ("phone", "+31 6 1234 5678", "E.164"),
    ("phone", "+0612345678", "E.164"),
    ("phone", "+3161234567890123", "E.164"),
    ("account_id", "-acct", "account_id identity is malformed"),
    ("account_id", "acct 4711", "account_id identity is malformed"),
    ("channel_id", "signal-only", "channel_id identity is malformed"),
    ("channel_id", "WhatsApp:12345", "channel_id identity is malformed"),
    ("channel_id", "whatsapp:12\x1b345", "channel_id identity is malformed"),
]


@pytest.mark.parametrize(("kind", "value", "rule"), BAD_IDENTITIES,
                         ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(BAD_IDENTITIES)])
def test_a_malformed_identity_is_refused_without_quoting_it(kind: str, value: str,
                                                            rule: str) -> None:
    error = refusal(identities=[{"type": "phone", "value": PHONE},
                                {"type": kind, "value": value}])
    assert list(problems(error)) == ["identities.1"]
    assert rule in problems(error)["identities.1"]
    assert_private(error, value, PHONE, EMAIL)


@pytest.mark.parametrize("value", [f"{'z' * 250}@example.com", "+3" + "1" * 300])
def test_an_oversized_identity_is_refused_by_length(value: str) -> None:
    error = refusal(identities=[{"type": "email", "value": value}])
    assert problems(error) == {"identities.0.value": "String should have at most 254 characters"}
    assert_private(error, value, value[:20])


def test_an_identity_of_an_unknown_type_names_the_types_allowed() -> None:
    error = refusal(identities=[{"type": "passport", "value": "NX1234567"}])
    assert "'email', 'phone', 'account_id' or 'channel_id'" in problems(error)["identities.0.type"]
    assert_private(error, "NX1234567")


def test_identities_must_be_a_list_of_one_to_ten_objects() -> None:
    assert problems(refusal(identities=EMAIL)) == {"identities": "Input should be a valid list"}
    assert_private(refusal(identities=EMAIL), EMAIL)
    assert "identities.0" in problems(refusal(identities=[EMAIL]))
    assert_private(refusal(identities=[EMAIL]), EMAIL)
    assert "at least 1 item" in problems(refusal(identities=[]))["identities"]
    eleven = [{"type": "phone", "value": f"+3161234567{i}"} for i in range(10)]
    eleven.append({"type": "email", "value": EMAIL})
    assert "at most 10 items" in problems(refusal(identities=eleven))["identities"]
    assert_private(refusal(identities=eleven), EMAIL, "+31612345670")


def test_a_bad_requester_email_is_refused_without_quoting_it() -> None:
    bad = "zora.quill(at)example.com"
    error = refusal(requester={"kind": "subject", "email": bad})
    assert "requester email is malformed" in problems(error)["requester.email"]
    assert_private(error, bad, EMAIL)


@pytest.mark.parametrize(("request_id", "why"), [
    ("AB\nCD", "newline"), ("AB\x07CD", "bell"), ("AB\x00CD", "nul"), ("AB\tCD", "tab"),
    ("-ABC", "leading dash"), ("AB", "too short"), ("A" * 65, "too long"),
    ("zora@example.com", "an email"), ("DSR/1/2", "slash"), ("DSR-ü-1", "non-ascii"),
])
def test_a_bad_request_id_is_refused(request_id: str, why: str) -> None:
    error = refusal(request_id=request_id)
    assert list(problems(error)) == ["request_id"], why
    assert "3-64 letters, digits" in problems(error)["request_id"]
    assert "input_value" not in str(error)


def test_rights_must_be_known_unique_and_one_to_ten() -> None:
    assert "Input should be 'access'" in problems(refusal(rights=["forget_me"]))["rights.0"]
    assert "at least 1 item" in problems(refusal(rights=[]))["rights"]
    assert "repeated" in problems(refusal(rights=["access", "erasure", "access"]))["rights"]
    assert list(problems(refusal(rights="access"))) == ["rights"]


@pytest.mark.parametrize(("field", "value", "rule"), [
    ("jurisdiction", "XX", "Input should be 'EU'"),
    ("jurisdiction", "eu", "Input should be 'EU'"),
    ("channel", "fax", "Input should be 'privacy_panel'"),
    ("language", "fr", "Input should be 'en' or 'zh'"),
    ("received_at", "2026-06-15T10:00:00", "needs a time zone"),
    ("received_at", (NOW + timedelta(minutes=6)).isoformat(), "is in the future"),
    ("received_at", "yesterday", "valid datetime"),
    ("last_login_at", "2026-06-15T10:00:00", "needs a time zone"),
    ("last_login_at", (NOW + timedelta(days=1)).isoformat(), "is in the future"),
    ("is_child", "perhaps", "valid boolean"),
])
def test_a_bad_scalar_field_is_named_with_its_rule(field: str, value: str, rule: str) -> None:
    shown = problems(refusal(**{field: value}))
    assert list(shown) == [field]
    assert rule in shown[field]


@pytest.mark.parametrize(("requester", "rule"), [
    ({"kind": "controller", "email": EMAIL}, "controller request needs customer_account"),
    ({"kind": "controller", "email": EMAIL, "customer_account": "acct 1"},
     "customer_account is malformed"),
    ({"kind": "agent", "email": EMAIL}, "agent's request needs mandate_reference"),
    ({"kind": "agent", "email": EMAIL, "mandate_reference": ""},
     "agent's request needs mandate_reference"),
    ({"kind": "lawyer", "email": EMAIL}, "Input should be 'subject', 'agent' or 'controller'"),
])
def test_the_requester_must_bring_what_its_role_needs(requester: dict[str, str],
                                                      rule: str) -> None:
    error = refusal(requester=requester)
    assert len(problems(error)) == 1
    assert rule in next(iter(problems(error).values()))
    assert next(iter(problems(error))).startswith("requester")
    assert_private(error, EMAIL)


def test_rectification_and_corrections_go_together() -> None:
    error = refusal(rights=["rectification"])
    assert "rectification needs corrections" in problems(error)["request"]
    assert_private(error, EMAIL)
    correction = [{"field": "job_title", "value": "Chief Quill Officer"}]
    error = refusal(rights=["access"], corrections=correction)
    assert "corrections are given but rectification is not requested" in problems(error)["request"]
    assert_private(error, "Chief Quill Officer", EMAIL)
    bad_field = [{"field": "Job Title", "value": "Chief Quill Officer"}]
    shown = problems(refusal(rights=["rectification"], corrections=bad_field))
    assert "corrections.0.field" in shown and "[a-z_]" in shown["corrections.0.field"]
    fixed = parse(rights=["rectification"], corrections=correction)
    assert fixed.corrections[0].field == "job_title"


def test_a_privacy_panel_request_needs_the_account_and_the_login() -> None:
    error = refusal(channel="privacy_panel", last_login_at=NOW.isoformat())
    assert "needs the account_id identity" in problems(error)["request"]
    assert_private(error, EMAIL)
    error = refusal(channel="privacy_panel",
                    identities=[{"type": "account_id", "value": ACCOUNT}])
    assert "needs last_login_at" in problems(error)["request"]
    assert_private(error, ACCOUNT, EMAIL)


@pytest.mark.parametrize("where", ["top", "identity", "requester"])
def test_unknown_fields_are_refused(where: str) -> None:
    if where == "top":
        error = refusal(nickname="Zo")
        field = "nickname"
    elif where == "identity":
        error = refusal(identities=[{"type": "email", "value": EMAIL, "verified": True}])
        field = "identities.0.verified"
    else:
        error = refusal(requester={"kind": "subject", "email": EMAIL, "role": "ceo"})
        field = "requester.role"
    assert problems(error) == {field: "Extra inputs are not permitted"}
    assert_private(error, EMAIL)


def test_a_whole_request_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_request([EMAIL], now=NOW)
    assert list(problems(caught.value)) == ["request"]
    assert_private(caught.value, EMAIL)


def test_every_problem_is_listed_at_once() -> None:
    error = refusal(jurisdiction="XX", channel="fax", rights=[],
                    identities=[{"type": "phone", "value": "0612345678"}])
    assert set(problems(error)) == {"jurisdiction", "channel", "rights", "identities.0"}
    assert_private(error, "0612345678")


# Properties ------------------------------------------------------------------------------------

# Text without control, separator or surrogate characters: what survives str.strip() and \S.
VISIBLE = st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"))


def _email(local_max: int = 64) -> st.SearchStrategy[str]:
    local = st.text(VISIBLE.filter(lambda c: c != "@" and not c.isspace()),
                    min_size=1, max_size=local_max)
    domain = st.from_regex(r"[A-Za-z0-9-]{1,20}(\.[A-Za-z0-9-]{1,10}){1,3}", fullmatch=True)
    return st.builds(lambda a, b: f"{a}@{b}", local, domain)


IDENTITY_VALUES: dict[IdentityType, st.SearchStrategy[str]] = {
    IdentityType.EMAIL: _email(),
    IdentityType.PHONE: st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True),
    IdentityType.ACCOUNT_ID: st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{1,63}", fullmatch=True),
    IdentityType.CHANNEL_ID: st.builds(
        lambda a, b: f"{a}:{b}", st.from_regex(r"[a-z_]{2,32}", fullmatch=True),
        st.text(VISIBLE.filter(lambda c: not c.isspace() and not "\x80" <= c <= "\x9f"),
                min_size=1, max_size=128)),
}
identities = st.sampled_from(list(IdentityType)).flatmap(
    lambda kind: IDENTITY_VALUES[kind].map(lambda value: {"type": kind.value, "value": value}))
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2026, 6, 1),
                       timezones=st.integers(-14 * 60, 14 * 60).map(
                           lambda minutes: timezone(timedelta(minutes=minutes))))
correction_values = st.text(min_size=1, max_size=500).map(str.strip).filter(bool)


@st.composite
def well_formed(draw: st.DrawFn) -> dict[str, Any]:
    rights = draw(st.lists(st.sampled_from(list(Right)), min_size=1, max_size=10, unique=True))
    channel = draw(st.sampled_from(list(Channel)))
    found = draw(st.lists(identities, min_size=1, max_size=9))
    kind = draw(st.sampled_from(list(RequesterKind)))
    requester: dict[str, Any] = {"kind": kind.value, "email": draw(_email())}
    if kind is RequesterKind.CONTROLLER or draw(st.booleans()):
        requester["customer_account"] = draw(IDENTITY_VALUES[IdentityType.ACCOUNT_ID])
    if kind is RequesterKind.AGENT:
        requester["mandate_reference"] = draw(correction_values.map(lambda v: v[:200]))
    login = draw(moments) if channel is Channel.PRIVACY_PANEL else draw(st.none() | moments)
    if channel is Channel.PRIVACY_PANEL and not any(i["type"] == "account_id" for i in found):
        found.append({"type": "account_id",
                      "value": draw(IDENTITY_VALUES[IdentityType.ACCOUNT_ID])})
    corrections = [{"field": field, "value": value} for field, value in draw(st.lists(
        st.tuples(st.from_regex(r"[a-z_]{2,40}", fullmatch=True), correction_values),
        min_size=1, max_size=5))] if Right.RECTIFICATION in rights else []
    return {
        "request_id": draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{2,63}", fullmatch=True)),
        "rights": [right.value for right in rights],
        "identities": found,
        "jurisdiction": draw(st.sampled_from(list(Jurisdiction))).value,
        "channel": channel.value,
        "requester": requester,
        "received_at": draw(moments).isoformat(),
        "last_login_at": login.isoformat() if login else None,
        "language": draw(st.sampled_from(list(Language))).value,
        "is_child": draw(st.booleans()),
        "corrections": corrections,
        "notify_deferred_erasure": draw(st.booleans()),
    }


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(well_formed())
def test_any_well_formed_request_round_trips_through_json(submitted: dict[str, Any]) -> None:
    request = parse_request(submitted, now=NOW)
    again = RightsRequest.model_validate_json(request.model_dump_json())
    assert again == request
    assert again.model_dump() == request.model_dump()
    assert [i.value for i in again.identities] == [i["value"] for i in submitted["identities"]]
    assert RequestInput.model_validate_json(
        RequestInput(request=request).model_dump_json()).request == request


MARK = "\u2603"  # in no message template: a value that carries it cannot hide in the rules' text
secrets = st.builds(lambda a, b: f"{a}{MARK}{b}", st.text(max_size=150), st.text(max_size=150))
BREAKAGES: dict[str, dict[str, Any]] = {
    "none": {},
    "jurisdiction": {"jurisdiction": "XX"},
    "rectification": {"rights": ["rectification"]},
    "panel": {"channel": "privacy_panel", "last_login_at": None},
    "future": {"received_at": "2999-01-01T00:00:00+00:00"},
    "extra": {"nickname": "Zo"},
}


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(list(IdentityType)), secret=secrets,
       where=st.sampled_from(["identity", "requester", "correction", "valid-identity"]),
       breakage=st.sampled_from(list(BREAKAGES)))
def test_no_refusal_quotes_an_identity(kind: IdentityType, secret: str, where: str,
                                       breakage: str) -> None:
    """Arbitrary text as an identity, the requester's email or a corrected value, alone or with
    other problems: neither the CLI's lines nor ``str(error)`` ever contain it."""
    fields: dict[str, Any] = {"identities": [{"type": kind.value, "value": secret}]}
    if where == "requester":
        fields = {"requester": {"kind": "subject", "email": secret}}
    elif where == "correction":
        fields = {"rights": ["rectification"],
                  "corrections": [{"field": "job_title", "value": secret}]}
    elif where == "valid-identity":  # well-formed, in a request refused for another reason
        secret = f"{MARK}{secret.replace(MARK, '')[:40]}@example.com"
        fields = {"identities": [{"type": "email", "value": secret},
                                 {"type": "account_id", "value": ACCOUNT}]}
    fields |= BREAKAGES[breakage]
    try:
        parse_request(data(**fields), now=NOW)
    except ValidationError as error:
        shown = describe_errors(error) + "\n" + str(error) + "\n" + repr(error)
        assert MARK not in shown
        assert secret.strip() not in shown
    else:  # the text happened to be well-formed where it stood: nothing was refused
        assert breakage in ("none", "rectification")


# Who is verified, and how -------------------------------------------------------------------------


def plan(reauth: int = 15, at: datetime = NOW, **fields: Any) -> list[tuple[str, Method, Any]]:
    targets = plan_verification(parse(**fields), at, reauth)
    return [(t.target_id, t.method, t.how if t.verified else
             t.registered_account or t.identity_index) for t in targets]


def panel(rights: list[str], login: datetime, **fields: Any) -> dict[str, Any]:
    return {"rights": rights, "channel": "privacy_panel", "last_login_at": login.isoformat(),
            "identities": [{"type": "account_id", "value": ACCOUNT}]} | fields


def test_privacy_panel_access_is_verified_by_the_account_login() -> None:
    old_login = NOW - timedelta(days=2)
    assert plan(**panel(["access"], old_login)) == [
        ("identity-1", Method.ACCOUNT_LOGIN, "privacy-panel login")]
    targets = plan_verification(parse(**panel(["access"], old_login)), NOW, 15)
    assert all(t.verified for t in targets)


def test_panel_erasure_needs_a_login_within_the_reauthentication_window() -> None:
    fresh = plan(**panel(["erasure"], NOW - timedelta(minutes=10)))
    assert fresh == [("identity-1", Method.ACCOUNT_LOGIN, "privacy-panel login")]
    edge = plan(**panel(["erasure"], NOW - timedelta(minutes=15)))
    assert edge == fresh
    stale = plan(**panel(["erasure"], NOW - timedelta(minutes=16)))
    assert stale == [("identity-1", Method.CODE, ACCOUNT)], "code to the account's contact"
    assert plan(reauth=30, **panel(["erasure"], NOW - timedelta(minutes=16))) == fresh


def test_an_email_request_sends_a_code_per_email_and_leaves_phones_to_an_officer() -> None:
    found = [{"type": "email", "value": EMAIL}, {"type": "phone", "value": PHONE},
             {"type": "email", "value": "other@example.com"},
             {"type": "channel_id", "value": "whatsapp:12345"},
             {"type": "account_id", "value": ACCOUNT}]
    assert plan(identities=found) == [
        ("identity-1", Method.CODE, 0), ("identity-2", Method.MANUAL, None),
        ("identity-3", Method.CODE, 2), ("identity-4", Method.MANUAL, None),
        ("identity-5", Method.CODE, ACCOUNT)]
    targets = plan_verification(parse(identities=found), NOW, 15)
    assert not any(t.verified for t in targets)


def test_post_is_verified_by_hand_whoever_asks() -> None:
    assert plan(channel="post") == [("postal", Method.MANUAL, None)]
    agent = {"kind": "agent", "email": EMAIL, "mandate_reference": "M-1"}
    assert plan(channel="post", requester=agent) == [("postal", Method.MANUAL, None)]


def test_an_agent_is_verified_by_its_mandate() -> None:
    agent = {"kind": "agent", "email": EMAIL, "mandate_reference": "POA-2026-17"}
    assert plan(requester=agent, identities=[{"type": "email", "value": EMAIL},
                                            {"type": "phone", "value": PHONE}]) == [
        ("mandate", Method.MANUAL, None)]


def test_a_controller_is_verified_through_its_registered_contact_or_its_api_key() -> None:
    controller = {"kind": "controller", "email": EMAIL, "customer_account": ACCOUNT}
    by_email = plan(requester=controller, rights=["erasure"],
                    identities=[{"type": "phone", "value": PHONE}])
    assert by_email == [("controller", Method.CODE, ACCOUNT)]
    by_api = plan(requester=controller, rights=["erasure"], channel="api",
                  identities=[{"type": "phone", "value": PHONE}])
    assert by_api == [("controller", Method.API_CREDENTIALS, "customer's authenticated API call")]


@pytest.mark.parametrize("rights", [["opt_out_sale_sharing"], ["limit_sensitive"],
                                    ["opt_out_sale_sharing", "limit_sensitive"]])
@pytest.mark.parametrize("channel", ["email", "post", "api"])
def test_opting_out_of_sale_or_sharing_needs_no_verification(rights: list[str],
                                                             channel: str) -> None:
    assert plan(rights=rights, channel=channel,
                identities=[{"type": "phone", "value": PHONE}]) == []
    assert plan(rights=[*rights, "access"], channel=channel,
                identities=[{"type": "phone", "value": PHONE}]) != []


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(well_formed())
def test_every_plan_verifies_something_exactly_when_data_is_disclosed_or_deleted(
        submitted: dict[str, Any]) -> None:
    request = parse_request(submitted, now=NOW)
    targets = plan_verification(request, NOW, 15)
    assert bool(targets) == needs_verification(request.rights)
    assert len({t.target_id for t in targets}) == len(targets)
    for target in targets:
        assert target.verified == (target.method in (Method.ACCOUNT_LOGIN,
                                                     Method.API_CREDENTIALS))
        if target.identity_index is not None:
            assert request.identities[target.identity_index].type is IdentityType.EMAIL
    if needs_verification(request.rights) and request.requester.kind is RequesterKind.SUBJECT \
            and request.channel is not Channel.POST:
        assert len(targets) == len(request.identities)


def test_identity_value_is_kept_out_of_repr() -> None:
    identity = Identity(type=IdentityType.EMAIL, value=EMAIL)
    assert EMAIL not in repr(identity) and EMAIL not in str(identity)
