"""Financial records are kept as long as the contracting entity's bookkeeping duty requires
(privacy statement 7 and 7.4): seven years for MessageBird B.V. in the Netherlands (AWR art. 52,
BW 2:10), the statement's "up to ten years" where no country rule is known. Counted to the day:
a record is kept through the last day of its period and may go the next day.

The plan is checked on its own, then end to end against a real customer account store: what
discovery reports, what the plan says, what erasure and the sweep leave, and what the answer
tells the person, in English and Chinese."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from activities.sweep import category_periods, plan_sweep
from connectors.customer_account import CustomerAccountConnector
from connectors.customer_account_store import (
    UNKNOWN_COUNTRY,
    Account,
    BillingProfile,
    Contract,
    Invoice,
)
from dsr.blobstore import LocalBlobStore
from dsr.connector_contract import (
    REDACTED,
    CategoryHolding,
    Discovery,
    EraseInput,
    Scope,
    SweepInput,
)
from dsr.connector_registry import load_registry
from dsr.emails import Action, AnswerContext, ProductOutcome, render_email
from dsr.models import Identity, IdentityType, Jurisdiction, Language, Right
from dsr.retention import (
    ErasurePlan,
    Period,
    RetentionPolicy,
    erasable_before,
    load_retention_policy,
    plan_erasure,
)
from tests.conftest import fresh_postgres_database, legal_confirmed_policy

ROOT = Path(__file__).parent.parent
SECRET = b"retention-entity-test-key-7c3e9a1f5b2d"
SEVEN_YEARS, TEN_YEARS = Period(years=7), Period(years=10)
DUTCH, ELSEWHERE = "ACC-NL", "ACC-UNKNOWN"  # the second has no contract recorded
HOLDER = "finance@example.com"


@pytest.fixture(scope="module")
def policy() -> RetentionPolicy:
    """The rules once Legal has confirmed the Dutch seven years (shipped as a draft)."""
    return load_retention_policy(legal_confirmed_policy() / "retention.yaml")


def test_while_the_dutch_seven_years_are_a_draft_the_statements_ten_bind() -> None:
    """A draft never makes an erasure earlier: unconfirmed, the shorter Dutch duty leaves the
    statement's ten years binding."""
    shipped = load_retention_policy()
    assert period(shipped, "invoices", ["NL"]) == TEN_YEARS


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def invoices(*dated: datetime, countries: tuple[str, ...] = ("NL",)) -> CategoryHolding:
    return CategoryHolding(
        category="invoices",
        records=len(dated),
        earliest=min(dated),
        latest=max(dated),
        countries_ended=list(countries),
    )


def period(policy: RetentionPolicy, category: str, countries: list[str]) -> Period | None:
    duty = policy.duty_for("customer_account", category, countries)
    return duty.period if duty else None


def cutoff(found: ErasurePlan) -> datetime:
    [rule] = found.rules["customer_account"]
    assert rule.before is not None
    return rule.before


def plan(policy: RetentionPolicy, as_of: datetime, *holdings: CategoryHolding) -> ErasurePlan:
    return plan_erasure([Discovery(connector="customer_account", holdings=list(holdings))],
                        as_of, policy)


# --- the rule ------------------------------------------------------------------------------


def test_the_dutch_entity_keeps_seven_years_and_an_unknown_one_the_statements_ten(
    policy: RetentionPolicy,
) -> None:
    assert period(policy, "invoices", ["NL"]) == SEVEN_YEARS
    assert period(policy, "billing_details", ["NL"]) == SEVEN_YEARS
    for countries in ([], [UNKNOWN_COUNTRY], ["US"], ["NL", UNKNOWN_COUNTRY]):
        assert period(policy, "invoices", countries) == TEN_YEARS
    assert period(policy, "account_profile", ["NL"]) is None


def test_a_country_whose_law_asks_longer_than_ten_years_binds_too(
    policy: RetentionPolicy,
) -> None:
    """The statement's ten years bound only the unknown: the law of the entity's country
    binds, shorter or longer (an invented country duty, for the test)."""
    data = policy.model_dump(mode="json")
    rule = next(r for r in data["rules"] if r["id"] == "company-financial-records")
    rule["overrides"].append({"country": "DE", "period": {"years": 11}, "status": "draft",
                              "source": "an invented duty"})
    longer = RetentionPolicy.model_validate(data)
    assert period(longer, "invoices", ["DE"]) == Period(years=11)
    assert period(longer, "invoices", ["NL"]) == SEVEN_YEARS


# --- to the day ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dated", "last_day"),
    [
        (utc(2019, 12, 31), date(2026, 12, 31)),  # the year's end
        (utc(2019, 12, 31, 23, 59), date(2026, 12, 31)),  # late in the day: the same day
        (utc(2020, 2, 29, 12), date(2027, 2, 28)),  # a leap day, in a year without one
        (utc(2021, 2, 28, 12), date(2028, 2, 28)),  # into a leap year: not the 29th
        (utc(2019, 8, 31, 12), date(2026, 8, 31)),  # a month's end
    ],
)
def test_a_dutch_invoice_is_kept_through_its_seventh_anniversary_and_goes_the_day_after(
    policy: RetentionPolicy, dated: datetime, last_day: date
) -> None:
    late_on_the_last_day = datetime.combine(last_day, datetime.max.time(), tzinfo=UTC)
    kept = plan(policy, late_on_the_last_day, invoices(dated))
    [part] = kept.retained
    assert (part.until, part.rule_id) == (last_day, "company-financial-records")
    assert cutoff(kept) <= dated
    assert kept.erase_at() == datetime.combine(last_day + timedelta(days=1), datetime.min.time(),
                                               tzinfo=UTC)

    next_day = plan(policy, kept.erase_at() or late_on_the_last_day, invoices(dated))
    assert next_day.retained == []
    assert cutoff(next_day) > dated


def test_the_cutoff_falls_on_the_first_day_still_kept() -> None:
    assert erasable_before(utc(2026, 12, 31, 23, 59), SEVEN_YEARS) == utc(2019, 12, 31)
    assert erasable_before(utc(2027, 1, 1), SEVEN_YEARS) == utc(2020, 1, 1)
    assert erasable_before(utc(2027, 2, 28, 8), SEVEN_YEARS) == utc(2020, 2, 28)
    assert erasable_before(utc(2027, 3, 1, 8), SEVEN_YEARS) == utc(2020, 3, 1)
    # 2021-02-28 + 7 years ended 2028-02-28: on the leap day it goes, and so do earlier ones.
    assert erasable_before(utc(2028, 2, 29, 8), SEVEN_YEARS) == utc(2021, 3, 1)


def test_an_account_with_no_known_entity_keeps_ten_years(policy: RetentionPolicy) -> None:
    [part] = plan(policy, utc(2026, 12, 31, 9), invoices(utc(2016, 12, 31),
                                                         countries=(UNKNOWN_COUNTRY,))).retained
    assert part.until == date(2026, 12, 31)
    assert "ten (10) years" in part.basis
    assert plan(policy, utc(2027, 1, 1), invoices(utc(2016, 12, 31))).retained == []


def test_each_contracting_country_keeps_its_own_records_for_its_own_duty(
    policy: RetentionPolicy,
) -> None:
    both = invoices(utc(2018, 6, 1), utc(2020, 6, 1), countries=("NL", UNKNOWN_COUNTRY))
    both.latest_by_country = {"NL": utc(2019, 3, 1), UNKNOWN_COUNTRY: utc(2018, 6, 1)}
    found = plan(policy, utc(2026, 8, 31, 12), both)

    rules = {tuple(r.countries_ended or ()): r.before for r in found.rules["customer_account"]}
    assert rules == {("NL",): utc(2019, 8, 31), (UNKNOWN_COUNTRY,): utc(2016, 8, 31)}
    # The Dutch invoices of 2019-03-01 are past their seven years; the others are kept ten.
    [part] = found.retained
    assert (part.countries_ended, part.until) == ([UNKNOWN_COUNTRY], date(2028, 6, 1))


def test_the_basis_names_the_entity_the_period_and_the_law_in_english_and_chinese(
    policy: RetentionPolicy,
) -> None:
    [part] = plan(policy, utc(2026, 1, 1), invoices(utc(2020, 1, 1))).retained
    english = " ".join(part.basis.split())
    for words in ("MessageBird B.V.", "the Netherlands", "seven (7) years", "AWR", "art. 52",
                  "(BW) book 2 art. 10", "privacy statement 7 and 7.4"):
        assert words in english, words
    chinese = part.basis_translations[Language.ZH]
    for words in ("符合公司和财务法律义务", "您所合同的特定附属公司", "MessageBird B.V.",
                  "七(7)年", "第52条", "第2卷第10条"):
        assert words in chinese, words


def test_the_sweep_applies_the_dutch_period_to_accounts_contracting_in_the_netherlands(
    policy: RetentionPolicy,
) -> None:
    assert category_periods(policy, "customer_account", "invoices") == (
        TEN_YEARS, {"NL": SEVEN_YEARS})
    registry = load_registry(ROOT / "connectors" / "registry.yaml")
    [part] = [p for p in plan_sweep(policy, registry, utc(2027, 1, 1))
              if p.connector == "customer_account"]
    rules = {(r.category, tuple(r.countries_ended or ())): r.before for r in part.rules}
    assert rules[("invoices", ("NL",))] == utc(2020, 1, 1)
    assert rules[("invoices", ())] == utc(2017, 1, 1)


# --- against a real store ------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CustomerAccountConnector]:
    """Two accounts of one holder: one contracting with MessageBird B.V. (NL), one with no
    contract recorded (an account from before contracts were kept); on SQLite and on
    PostgreSQL (skipped without a server)."""
    if request.param == "sqlite":
        yield from _filled(f"sqlite:///{tmp_path / 'customer_account.db'}", tmp_path)
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_admin_url")) as url:
        yield from _filled(url, tmp_path)


def _filled(url: str, tmp_path: Path) -> Iterator[CustomerAccountConnector]:
    connector = CustomerAccountConnector(url, LocalBlobStore(tmp_path / "blobs"), SECRET)
    with connector.store.writing() as session:
        for account_id in (DUTCH, ELSEWHERE):
            session.add(Account(account_id=account_id, company_name="Example Trading",
                                registered_email=HOLDER, created_at=utc(2015, 1, 5),
                                status="active", processing_restricted=False))
            session.add(BillingProfile(account_id=account_id, billing_name="Example Trading",
                                       company_address="1 Example Street", bank_iban="NL00TEST",
                                       bank_bic="TESTNL2A", vat_number="NL000",
                                       updated_at=utc(2019, 12, 31)))
            for issued in (utc(2016, 12, 31), utc(2019, 12, 31)):
                session.add(Invoice(account_id=account_id, issued_at=issued, amount_cents=100,
                                    currency="EUR", billing_name="Example Trading",
                                    billing_email=HOLDER, billing_address="1 Example Street"))
        session.add(Contract(account_id=DUTCH, entity="MessageBird B.V.", country="NL"))
    yield connector
    connector.store.engine.dispose()


def scope(as_of: datetime, request_id: str = "REQ-ENTITY-1") -> Scope:
    """The account holder, logged in to each account (an erasure clears the registered
    address: a later erasure finds the accounts by their ids)."""
    held = [Identity(type=IdentityType.ACCOUNT_ID, value=a) for a in (DUTCH, ELSEWHERE)]
    return Scope(request_id=request_id, as_of=as_of,
                 identities=[*held, Identity(type=IdentityType.EMAIL, value=HOLDER)])


def redacted(connector: CustomerAccountConnector) -> dict[tuple[str, date], bool]:
    with connector.store.reading() as session:
        rows = session.scalars(select(Invoice)).all()
        return {(r.account_id, r.issued_at.date()): r.billing_email == REDACTED for r in rows}


def erase_as_of(
    connector: CustomerAccountConnector, policy: RetentionPolicy, as_of: datetime
) -> ErasurePlan:
    discovery = connector.discover(scope(as_of))
    found = plan_erasure([discovery], as_of, policy)
    rules = found.rules["customer_account"]
    connector.erase(EraseInput(scope=scope(as_of, f"REQ-{as_of:%Y%m%d%H%M}"), rules=rules))
    return found


def test_discovery_reports_the_contracting_entitys_country_per_category(
    store: CustomerAccountConnector,
) -> None:
    holdings = {h.category: h for h in store.discover(scope(utc(2026, 12, 31))).holdings}
    assert holdings["invoices"].countries_ended == ["NL", UNKNOWN_COUNTRY]
    assert holdings["invoices"].latest_by_country == {
        "NL": utc(2019, 12, 31), UNKNOWN_COUNTRY: utc(2019, 12, 31)}
    assert holdings["billing_details"].records == 2


def test_a_dutch_invoice_of_2019_12_31_is_erased_on_2027_01_01_not_before(
    store: CustomerAccountConnector, policy: RetentionPolicy
) -> None:
    on_the_last_day = erase_as_of(store, policy, utc(2026, 12, 31, 23, 59))
    assert redacted(store) == {
        (DUTCH, date(2016, 12, 31)): True, (DUTCH, date(2019, 12, 31)): False,
        (ELSEWHERE, date(2016, 12, 31)): False, (ELSEWHERE, date(2019, 12, 31)): False,
    }
    kept = {(p.category, tuple(p.countries_ended or ())): p.until
            for p in on_the_last_day.retained}
    assert kept[("invoices", ("NL",))] == date(2026, 12, 31)
    assert kept[("invoices", (UNKNOWN_COUNTRY,))] == date(2029, 12, 31)

    erase_as_of(store, policy, utc(2027, 1, 1))
    assert redacted(store) == {
        (DUTCH, date(2016, 12, 31)): True, (DUTCH, date(2019, 12, 31)): True,
        (ELSEWHERE, date(2016, 12, 31)): True, (ELSEWHERE, date(2019, 12, 31)): False,
    }, "the unknown entity's ten years of the 2016 invoice ended on 2026-12-31 too"


def test_the_sweep_anonymises_dutch_books_after_seven_years_and_others_after_ten(
    store: CustomerAccountConnector, policy: RetentionPolicy
) -> None:
    registry = load_registry(ROOT / "connectors" / "registry.yaml")
    for as_of in (utc(2026, 12, 31, 23), utc(2027, 1, 1, 3)):
        [part] = [p for p in plan_sweep(policy, registry, as_of)
                  if p.connector == "customer_account"]
        store.sweep(SweepInput(sweep_id=f"SWEEP-{as_of:%Y%m%d}", as_of=as_of, rules=part.rules))
        dutch_2019 = redacted(store)[(DUTCH, date(2019, 12, 31))]
        assert dutch_2019 is (as_of.year == 2027), as_of
    assert redacted(store) == {
        (DUTCH, date(2016, 12, 31)): True, (DUTCH, date(2019, 12, 31)): True,
        (ELSEWHERE, date(2016, 12, 31)): True, (ELSEWHERE, date(2019, 12, 31)): False,
    }


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (Language.EN, ("records dated 31 December 2019 or later, kept until 31 December 2026",
                       "MessageBird B.V. in the Netherlands", "seven (7) years")),
        (Language.ZH, ("2019年12月31日及之后的记录,保留至2026年12月31日",
                       "MessageBird B.V.(荷兰)的法律保留要求为七(7)年")),
    ],
)
def test_the_answer_says_what_is_kept_until_when_and_under_which_duty(
    store: CustomerAccountConnector, policy: RetentionPolicy, language: Language,
    expected: tuple[str, ...],
) -> None:
    as_of = utc(2026, 12, 31, 10)
    found = erase_as_of(store, policy, as_of)
    dutch = [p for p in found.retained if p.countries_ended == ["NL"]]
    context = AnswerContext(
        request_id="REQ-ENTITY-1", language=language, rights=[Right.ERASURE],
        jurisdiction=Jurisdiction.EU, received_on=date(2026, 12, 1), answered_on=as_of.date(),
        outcomes=[ProductOutcome(connector="customer_account", products=["Customer account"],
                                 action=Action.ERASED)],
        retained=dutch, complaint="-",
    )
    body = " ".join(render_email(context).body.split())
    for words in expected:
        assert words in body, words


def test_a_part_kept_under_a_draft_override_says_so() -> None:
    """Italy's two years (an example, draft) still keep traffic data, marked for review."""
    shipped = load_retention_policy()
    duty = shipped.duty_for("sms", "traffic_data", ["IT"])
    assert duty is not None and duty.period == Period(years=2) and duty.draft
    assert not (shipped.duty_for("sms", "message_content", ["IT"]) or duty).draft
