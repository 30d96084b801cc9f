"""Retention rules and the erasure plan: what is erased now, what is kept, why and until when."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from dsr.connector_contract import CategoryHolding, Discovery, EraseRule
from dsr.holds import Hold, HoldKind
from dsr.models import Language
from dsr.retention import (
    ErasurePlan,
    Period,
    PolicyError,
    RetentionPolicy,
    add_period,
    keep_until,
    load_retention_policy,
    plan_erasure,
)
from dsr.retention_periods import subtract_period

AS_OF = datetime(2026, 8, 31, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def policy() -> RetentionPolicy:
    return load_retention_policy()


def at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 12, 0, tzinfo=UTC)


def day(year: int, month: int, on: int) -> datetime:
    """The start (UTC) of a day: erase rules' cutoffs fall on whole days."""
    return datetime(year, month, on, tzinfo=UTC)


def holding(
    category: str,
    earliest: datetime | None,
    latest: datetime | None,
    records: int = 3,
    countries: list[str] | None = None,
) -> CategoryHolding:
    return CategoryHolding(
        category=category,
        records=records,
        earliest=earliest,
        latest=latest,
        countries_ended=countries or [],
    )


def plan_for(connector: str, *holdings: CategoryHolding, policy: RetentionPolicy) -> ErasurePlan:
    return plan_erasure([Discovery(connector=connector, holdings=list(holdings))], AS_OF, policy)


# --- calendar arithmetic -------------------------------------------------------------------


def test_subtracting_months_lands_on_the_last_day_when_the_date_does_not_exist() -> None:
    assert subtract_period(AS_OF, Period(months=6)) == at(2026, 2, 28)
    assert subtract_period(at(2028, 8, 31), Period(months=6)) == at(2028, 2, 29)
    assert subtract_period(at(2026, 3, 15), Period(years=10)) == at(2016, 3, 15)


def test_adding_months_keeps_the_day_or_the_month_end() -> None:
    assert add_period(at(2026, 8, 31), Period(months=6)) == at(2027, 2, 28)
    assert add_period(at(2026, 6, 30), Period(months=6)) == at(2026, 12, 30)
    assert add_period(at(2025, 11, 15), Period(months=3)) == at(2026, 2, 15)


# --- SMS: six months from the record's date ------------------------------------------------


def test_sms_records_younger_than_six_months_are_kept_older_ones_erased(policy) -> None:
    plan = plan_for(
        "sms", holding("traffic_data", at(2025, 12, 31), at(2026, 6, 30)), policy=policy
    )

    assert plan.rules == {"sms": [EraseRule(category="traffic_data", before=day(2026, 3, 1))]}
    [part] = plan.retained
    assert (part.connector, part.category, part.rule_id) == (
        "sms",
        "traffic_data",
        "sms-voice-integrity",
    )
    assert part.records_until == day(2026, 3, 1)
    assert part.until == date(2026, 12, 30)  # six months after the newest record
    assert "integrity" in part.basis
    assert part.basis_translations[Language.ZH].startswith("履行我们的法律义务")


def test_sms_records_all_older_than_six_months_are_erased_without_a_retained_part(policy) -> None:
    plan = plan_for(
        "sms", holding("message_content", at(2025, 10, 1), at(2025, 12, 31)), policy=policy
    )

    assert plan.rules["sms"] == [EraseRule(category="message_content", before=day(2026, 3, 1))]
    assert plan.retained == []


def test_a_record_is_kept_through_the_last_day_of_its_period(policy) -> None:
    """On 2026-08-31, six months keep records of 2026-03-01 (until 2026-09-01); one of
    2026-02-28 was kept until 2026-08-28 and goes, whatever its time of day."""
    plan = plan_for("sms", holding("phone_number", at(2026, 3, 1), at(2026, 3, 1)), policy=policy)
    [part] = plan.retained
    assert part.until == date(2026, 9, 1) and part.records_until == day(2026, 3, 1)

    late = datetime(2026, 2, 28, 23, 59, tzinfo=UTC)
    assert plan_for("sms", holding("phone_number", late, late), policy=policy).retained == []


def test_every_sms_category_is_covered_including_future_ones(policy) -> None:
    for category in (
        "phone_number",
        "traffic_data",
        "location_data",
        "message_content",
        "a_category_added_later",
    ):
        plan = plan_for("sms", holding(category, at(2026, 5, 1), at(2026, 7, 1)), policy=policy)
        assert plan.rules["sms"][0].before == day(2026, 3, 1), category


# --- customer account ----------------------------------------------------------------------


def test_invoices_are_kept_ten_years_where_no_contracting_entity_is_known(policy) -> None:
    """The statement's upper bound; per entity: tests/test_retention_entity.py."""
    plan = plan_for(
        "customer_account", holding("invoices", at(2015, 1, 10), at(2020, 3, 15)), policy=policy
    )

    assert plan.rules["customer_account"] == [
        EraseRule(category="invoices", before=day(2016, 8, 31))
    ]
    [part] = plan.retained
    assert part.rule_id == "company-financial-records"
    assert part.until == date(2030, 3, 15)


def test_account_profile_is_erased_at_once(policy) -> None:
    plan = plan_for(
        "customer_account", holding("account_profile", at(2019, 1, 1), AS_OF), policy=policy
    )

    assert plan.rules == {"customer_account": [EraseRule(category="account_profile")]}
    assert plan.retained == []


def test_keep_at_most_rules_never_block_erasure(policy) -> None:
    plan = plan_for("marketing", holding("prospect_profile", at(2026, 8, 1), AS_OF), policy=policy)

    assert plan.rules == {"marketing": [EraseRule(category="prospect_profile", before=None)]}


# --- overrides and overlapping rules -------------------------------------------------------


def test_the_country_where_the_communication_ended_lengthens_sms_retention(policy) -> None:
    ended_in_italy = holding("traffic_data", at(2024, 1, 1), at(2025, 6, 30), countries=["IT"])
    plan = plan_for("sms", ended_in_italy, policy=policy)

    assert plan.rules["sms"][0].before == day(2024, 8, 31)  # two years, not six months
    [part] = plan.retained
    assert part.until == date(2027, 6, 30)
    assert "Italy" in part.basis


@pytest.mark.parametrize(("connector", "category"), [("sms", "message_content"),
                                                     ("voice", "call_recordings")])
def test_national_telecom_duties_keep_no_content(policy, connector: str, category: str) -> None:
    """Telecom retention laws cover traffic and location data (Italy's Codice Art. 132
    excludes content): content ended in Italy is kept six months, as anywhere."""
    content = holding(category, at(2024, 1, 1), at(2025, 6, 30), countries=["IT"])
    plan = plan_for(connector, content, policy=policy)

    assert plan.rules[connector][0].before == day(2026, 3, 1)  # six months, not two years
    assert plan.retained == []
    location = holding("location_data", at(2024, 1, 1), at(2025, 6, 30), countries=["IT"])
    [part] = plan_for(connector, location, policy=policy).retained
    assert part.until == date(2027, 6, 30) and "Italy" in part.basis


def test_a_country_without_an_override_keeps_the_default(policy) -> None:
    plan = plan_for(
        "sms",
        holding("traffic_data", at(2025, 1, 1), at(2025, 6, 30), countries=["FR"]),
        policy=policy,
    )

    assert plan.rules["sms"][0].before == day(2026, 3, 1)
    assert plan.retained == []


def test_each_country_keeps_its_communications_for_its_own_duty(policy) -> None:
    """Messages that ended in Italy are kept two years, in Poland one, elsewhere six months:
    a longer duty in one country never keeps another country's messages."""
    traffic = holding("traffic_data", None, at(2026, 6, 30), countries=["FR", "IT", "NL", "PL"])
    traffic.latest_by_country = {"FR": at(2026, 6, 30), "IT": at(2025, 1, 10),
                                 "NL": at(2026, 2, 1), "PL": at(2025, 3, 1)}
    plan = plan_for("sms", traffic, policy=policy)

    rules = {tuple(rule.countries_ended or ()): rule.before for rule in plan.rules["sms"]}
    assert rules == {("FR", "NL"): day(2026, 3, 1), ("IT",): day(2024, 8, 31),
                     ("PL",): day(2025, 8, 31)}
    kept = {tuple(part.countries_ended or ()): part.until for part in plan.retained}
    # French and Dutch messages up to 2026-06-30 are kept six months; the Italian ones of
    # 2025-01-10 two years; the Polish ones of 2025-03-01 are past their year: erased now.
    assert kept == {("FR", "NL"): date(2026, 12, 30), ("IT",): date(2027, 1, 10)}


def test_countries_sharing_a_duty_get_one_unconfined_rule(policy) -> None:
    plan = plan_for(
        "sms",
        holding("traffic_data", None, at(2025, 6, 30), countries=["DE", "FR"]),
        policy=policy,
    )

    [rule] = plan.rules["sms"]
    assert (rule.before, rule.countries_ended) == (day(2026, 3, 1), None)


def test_categories_a_connector_does_not_declare_are_never_sent(policy) -> None:
    discovery = Discovery(connector="sms", holdings=[
        holding("traffic_data", None, at(2025, 6, 30)), holding("gossip", None, None)])
    plan = plan_erasure([discovery], AS_OF, policy, {"sms": {"traffic_data"}})

    assert [rule.category for rule in plan.rules["sms"]] == ["traffic_data"]


def overlapping_policy() -> RetentionPolicy:
    basis = {"en": "a basis"}
    return RetentionPolicy.model_validate(
        {
            "version": "test",
            "hold_basis": {"litigation": basis | DRAFT, "government": basis | DRAFT},
            "rules": [
                {
                    "id": "short",
                    "kind": "must_keep", "status": "draft", "source": "test",
                    "covers": {"voice": ["*"]},
                    "period": {"months": 6},
                    "basis": basis,
                    "overrides": [{"country": "DE", "period": {"months": 3}, "status": "draft",
                                   "source": "test"}],
                },
                {
                    "id": "long",
                    "kind": "must_keep", "status": "draft", "source": "test",
                    "covers": {"voice": ["recording"]},
                    "period": {"years": 3},
                    "basis": {"en": "the long one", "zh": "长的"},
                },
                {
                    "id": "most",
                    "kind": "keep_at_most", "status": "draft", "source": "test",
                    "covers": {"voice": ["recording"]},
                    "period": {"months": 1},
                    "basis": basis,
                },
            ],
        }
    )


def test_the_longest_of_overlapping_rules_binds() -> None:
    plan = plan_for(
        "voice", holding("recording", at(2025, 1, 1), at(2026, 1, 1)), policy=overlapping_policy()
    )

    assert plan.rules["voice"][0].before == day(2023, 8, 31)
    [part] = plan.retained
    assert (part.rule_id, part.basis, part.until) == ("long", "the long one", date(2029, 1, 1))


def test_a_shorter_override_never_shortens_a_duty() -> None:
    plan = plan_for(
        "voice",
        holding("traffic_data", None, at(2026, 5, 1), countries=["DE"]),
        policy=overlapping_policy(),
    )

    assert plan.rules["voice"][0].before == day(2026, 3, 1)
    assert plan.retained[0].until == date(2026, 11, 1)


# --- what is left out ----------------------------------------------------------------------


def test_empty_holdings_and_the_orchestrators_own_records_produce_nothing(policy) -> None:
    discoveries = [
        Discovery(connector="sms", holdings=[holding("traffic_data", None, None, records=0)]),
        Discovery(
            connector="orchestrator",
            holdings=[holding("request_confirmation", at(2026, 1, 1), AS_OF)],
        ),
        Discovery(connector="customer_account"),
    ]
    plan = plan_erasure(discoveries, AS_OF, policy)

    assert plan == ErasurePlan(policy_version=policy.version)
    assert plan.erase_at() is None


def test_unknown_record_dates_keep_a_conservative_until(policy) -> None:
    plan = plan_for("sms", holding("location_data", None, None), policy=policy)

    assert plan.retained[0].until == date(2027, 2, 28)  # as of + six months: never too early


# --- the plan as a whole -------------------------------------------------------------------


def test_erase_at_is_the_day_after_the_earliest_until(policy) -> None:
    discoveries = [
        Discovery(connector="sms", holdings=[holding("traffic_data", None, at(2026, 7, 1))]),
        Discovery(
            connector="customer_account", holdings=[holding("invoices", None, at(2020, 1, 1))]
        ),
    ]
    plan = plan_erasure(discoveries, AS_OF, policy)

    assert plan.erase_at() == datetime(2027, 1, 2, tzinfo=UTC)


def test_the_plan_records_the_policy_version_and_survives_json(policy) -> None:
    plan = plan_for("sms", holding("traffic_data", None, at(2026, 7, 1)), policy=policy)

    assert plan.policy_version == policy.version
    assert ErasurePlan.model_validate_json(plan.model_dump_json()) == plan


def test_naive_times_are_taken_as_utc(policy) -> None:
    naive = holding("traffic_data", None, datetime(2026, 7, 1, 12))
    plan = plan_erasure(
        [Discovery(connector="sms", holdings=[naive])], AS_OF.replace(tzinfo=None), policy
    )

    assert plan.rules["sms"][0].before == day(2026, 3, 1)


def test_keep_until_gives_when_a_kept_record_may_go(policy) -> None:
    sent = at(2026, 2, 28)

    assert keep_until(policy, "orchestrator", "request_confirmation", sent) == at(2031, 2, 28)
    assert keep_until(policy, "customer_account", "account_profile", sent) is None


# --- the policy file -----------------------------------------------------------------------


def test_the_shipped_policy_states_every_duty(policy) -> None:
    rules = {rule.id: rule for rule in policy.rules}
    assert policy.version
    assert rules["sms-voice-integrity"].period == Period(months=6)
    assert rules["company-financial-records"].covers == {
        "customer_account": ["billing_details", "invoices"]
    }
    assert rules["consent-proof"].period == Period(years=5)
    assert rules["request-confirmation"].covers == {"orchestrator": ["request_confirmation"]}
    assert rules["marketing-sales"].kind == "keep_at_most"
    assert all(rule.basis.zh for rule in policy.rules)


DRAFT = {"status": "draft", "source": "test"}
VALID_RULE = """\
  - id: sms
    kind: must_keep
    status: draft
    source: test
    covers: {sms: ["*"]}
    period: {months: 6}
    basis: {en: telecom duty}
"""


def write_policy(tmp_path: Path, second_rule: str) -> Path:
    path = tmp_path / "retention.yaml"
    holds = ("hold_basis: {litigation: {en: kept, status: draft, source: test}, "
             "government: {en: kept, status: draft, source: test}}\n")
    path.write_text(f'version: "t"\n{holds}rules:\n{VALID_RULE}{second_rule}', encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("second_rule", "field", "words"),
    [
        (
            "  - id: bad\n    kind: keep_forever\n"
            "    status: draft\n    source: test\n    covers: {sms: ['*']}\n"
            "    period: {months: 6}\n    basis: {en: b}\n",
            "kind",
            "must_keep",
        ),
        (
            "  - id: bad\n    kind: must_keep\n"
            "    status: draft\n    source: test\n    covers: {sms: ['*']}\n"
            "    period: {months: -6}\n    basis: {en: b}\n",
            "period.months",
            "greater than",
        ),
        (
            "  - id: bad\n    kind: must_keep\n"
            "    status: draft\n    source: test\n    covers: {sms: ['*']}\n"
            "    period: {months: 6}\n",
            "basis",
            "required",
        ),
        (
            "  - id: bad\n    kind: must_keep\n"
            "    status: draft\n    source: test\n    covers: {sms: ['*']}\n"
            "    period: {weeks: 6}\n    basis: {en: b}\n",
            "period.weeks",
            "not permitted",
        ),
    ],
    ids=["unknown kind", "negative period", "missing basis", "unknown unit"],
)
def test_an_invalid_rule_names_the_file_the_rule_and_the_field(
    tmp_path: Path, second_rule: str, field: str, words: str
) -> None:
    path = write_policy(tmp_path, second_rule)

    with pytest.raises(PolicyError) as raised:
        load_retention_policy(path)

    message = str(raised.value)
    assert str(path) in message
    assert "rules[1] (id 'bad')" in message
    assert f"field '{field}'" in message
    assert words in message


def test_a_must_keep_rule_without_a_period_is_refused(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path, "  - id: bad\n    kind: must_keep\n"
            "    status: draft\n    source: test\n    covers: {sms: [x_y]}\n    basis: {en: b}\n"
    )

    with pytest.raises(PolicyError, match=r"rules\[1\] \(id 'bad'\).*needs a period"):
        load_retention_policy(path)


def test_repeated_rule_ids_are_refused(tmp_path: Path) -> None:
    path = write_policy(tmp_path, VALID_RULE)

    with pytest.raises(PolicyError, match="unique: sms repeated"):
        load_retention_policy(path)


def test_a_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "retention.yaml"
    path.write_text('version: "t"\nrules:\n  - id: a\n    kind: must_keep: oops\n')

    with pytest.raises(PolicyError, match=r"retention\.yaml: line 4, column \d+: not valid YAML"):
        load_retention_policy(path)


def test_a_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot be read"):
        load_retention_policy(tmp_path / "absent.yaml")


# --- legal holds ---------------------------------------------------------------------------


def _hold(until: date | None = None, kind: HoldKind = HoldKind.LITIGATION) -> Hold:
    return Hold(hold_id="HOLD-1", kind=kind, category="traffic_data", until=until)


def test_a_held_category_is_not_erased_at_all_and_kept_until_released(policy) -> None:
    discovery = Discovery(connector="sms", holdings=[
        holding("traffic_data", at(2024, 1, 1), at(2025, 1, 1)),
        holding("message_content", at(2024, 1, 1), at(2025, 1, 1))])
    held = {("sms", "traffic_data"): _hold()}

    plan = plan_erasure([discovery], AS_OF, policy, None, lambda c, k: held.get((c, k)))

    assert [rule.category for rule in plan.rules["sms"]] == ["message_content"]
    [part] = plan.retained
    assert (part.category, part.rule_id, part.until, part.records_until) == (
        "traffic_data", "HOLD-1", None, None)
    assert "legal hold" in part.basis and part.basis_translations[Language.ZH]
    assert plan.erase_at() is None  # waits for the release, not for a date


def test_a_dated_hold_and_a_longer_duty_keep_until_the_later(policy) -> None:
    recent = holding("traffic_data", at(2026, 5, 1), at(2026, 8, 1), countries=["IT"])
    held = {("sms", "traffic_data"): _hold(until=date(2027, 1, 31))}

    plan = plan_erasure([Discovery(connector="sms", holdings=[recent])], AS_OF, policy, None,
                        lambda c, k: held.get((c, k)))

    assert plan.retained[0].until == date(2028, 8, 1)  # Italy's two years outlast the hold
    assert "sms" not in plan.rules
