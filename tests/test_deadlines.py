"""dsr/deadlines.py: month and business-day arithmetic, end of day, the query's checks, the
properties every deadline keeps, and the group's promise and cap over draft rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dsr.deadline_policy import DeadlinePolicy
from dsr.deadlines import (
    DeadlineQuery,
    add_business_days,
    add_months,
    compute_deadline,
    end_of_day,
    is_working_day,
    next_working_day,
)
from dsr.models import Jurisdiction, Right
from tests.deadline_rules import J, R, compute
from tests.deadline_rules import policy as policy  # the fixture
from tests.deadline_rules import shipped as shipped  # the fixture

# --- month arithmetic ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2027, 1, 31), 1, date(2027, 2, 28)),  # no Feb 31: last day of Feb 2027
        (date(2028, 1, 31), 1, date(2028, 2, 29)),  # 2028 is a leap year
        (date(2027, 3, 31), 1, date(2027, 4, 30)),  # no Apr 31
        (date(2027, 1, 15), 1, date(2027, 2, 15)),  # same calendar date
        (date(2026, 12, 31), 1, date(2027, 1, 31)),  # across the year end
        (date(2026, 12, 31), 2, date(2027, 2, 28)),
        (date(2027, 11, 30), 3, date(2028, 2, 29)),
        (date(2100, 1, 31), 1, date(2100, 2, 28)),  # 2100: not a leap year
        (date(2027, 2, 28), 1, date(2027, 3, 28)),  # not "end of month" to end of month
    ],
)
def test_add_months(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


# --- helpers -------------------------------------------------------------------------------


def test_end_of_day_in_winter_and_summer() -> None:
    assert end_of_day(date(2027, 12, 27), "Europe/Amsterdam") == datetime(
        2027, 12, 27, 22, 59, 59, 999999, tzinfo=UTC
    )
    assert end_of_day(date(2027, 7, 1), "Europe/Amsterdam") == datetime(
        2027, 7, 1, 21, 59, 59, 999999, tzinfo=UTC
    )
    assert end_of_day(date(2026, 12, 3), "America/Los_Angeles") == datetime(
        2026, 12, 4, 7, 59, 59, 999999, tzinfo=UTC
    )


def test_business_day_helpers(policy: DeadlinePolicy) -> None:
    nl = policy.jurisdictions[J.EU].holiday_calendar
    assert not is_working_day(date(2027, 4, 27), nl)  # King's Day
    assert not is_working_day(date(2027, 2, 6), nl)  # Saturday
    assert is_working_day(date(2027, 4, 28), nl)
    assert next_working_day(date(2027, 4, 28), nl) == date(2027, 4, 28)
    # From Fri Apr 23: Mon 26 (1), Tue 27 King's Day, Wed 28 (2).
    assert add_business_days(date(2027, 4, 23), 2, nl) == date(2027, 4, 28)


def test_extra_closures_count_as_holidays(policy: DeadlinePolicy) -> None:
    # Close the office on Wed 2027-04-28 too: King's Day target now rolls to Thu Apr 29.
    eu = policy.jurisdictions[J.EU]
    calendar = eu.holiday_calendar.model_copy(update={"extra_closures": (date(2027, 4, 28),)})
    rules = eu.model_copy(update={"holiday_calendar": calendar})
    jurisdictions = {**policy.jurisdictions, J.EU: rules}
    custom = policy.model_copy(update={"jurisdictions": jurisdictions})
    d = compute(custom, J.EU, [R.ACCESS], datetime(2027, 3, 27, 11, tzinfo=UTC))
    assert d.due_on == date(2027, 4, 29)


def test_query_needs_an_aware_receipt_time() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        DeadlineQuery(jurisdiction=J.EU, rights=[R.ACCESS], received_at=datetime(2027, 1, 1))
    with pytest.raises(ValidationError):
        DeadlineQuery(jurisdiction=J.EU, rights=[], received_at=datetime(2027, 1, 1, tzinfo=UTC))
    with pytest.raises(ValidationError):
        DeadlineQuery(
            jurisdiction=J.UK,
            rights=[R.ACCESS],
            received_at=datetime(2027, 1, 1, tzinfo=UTC),
            paused_days=-1,
        )


# --- properties ----------------------------------------------------------------------------

queries = st.builds(
    DeadlineQuery,
    jurisdiction=st.sampled_from(list(Jurisdiction)),
    rights=st.lists(st.sampled_from(list(Right)), min_size=1, max_size=4, unique=True),
    received_at=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
    ),
    paused_days=st.integers(min_value=0, max_value=60),
)

_PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_PROPERTY_SETTINGS
@given(query=queries)
def test_property_order_and_bounds(policy: DeadlinePolicy, query: DeadlineQuery) -> None:
    rules = policy.jurisdictions[query.jurisdiction]
    cal = rules.holiday_calendar
    d = compute_deadline(query, policy)
    paused = timedelta(days=query.paused_days if rules.clock_stops_for_clarification else 0)

    assert d.due_on >= d.target_on >= d.received_on
    # Within the group promise (plus a stopped clock); only roll-over may go past it.
    assert d.target_on <= add_months(d.received_on, 1) + paused
    if rules.rolls_over:
        assert d.due_on == next_working_day(d.target_on, cal)
    else:
        assert d.due_on == d.target_on
    # due_at is the last instant of due_on, local time.
    assert d.due_at.tzinfo is not None
    assert d.due_at == end_of_day(d.due_on, rules.time_zone)
    local = d.due_at.astimezone(ZoneInfo(rules.time_zone))
    assert (local.date(), local.time()) == (d.due_on, time.max)

    if d.extension_limit_on is None:
        assert d.extension_notice_by is None
    else:
        assert d.extension_notice_by == d.due_at
        cap = add_months(d.received_on, 2) + paused
        assert d.due_on <= d.extension_limit_on
        assert d.extension_limit_on <= (next_working_day(cap, cal) if rules.rolls_over else cap)


@_PROPERTY_SETTINGS
@given(query=queries, extra=st.sampled_from(list(Right)))
def test_property_more_rights_never_later(
    policy: DeadlinePolicy, query: DeadlineQuery, extra: Right
) -> None:
    if extra in query.rights:
        return
    more = query.model_copy(update={"rights": [*query.rights, extra]})
    base, wider = compute_deadline(query, policy), compute_deadline(more, policy)
    assert wider.due_on <= base.due_on
    if wider.extension_limit_on is not None:
        assert base.extension_limit_on is not None
        assert wider.extension_limit_on <= base.extension_limit_on


@_PROPERTY_SETTINGS
@given(query=queries, more_days=st.integers(min_value=1, max_value=30))
def test_property_pauses_only_delay_where_clock_stops(
    policy: DeadlinePolicy, query: DeadlineQuery, more_days: int
) -> None:
    longer = query.model_copy(update={"paused_days": query.paused_days + more_days})
    base, paused = compute_deadline(query, policy), compute_deadline(longer, policy)
    if policy.jurisdictions[query.jurisdiction].clock_stops_for_clarification:
        assert paused.target_on == base.target_on + timedelta(days=more_days)
        assert paused.due_on >= base.due_on
    else:
        assert paused == base


# --- unconfirmed rules ---------------------------------------------------------------------


def test_shipped_rules_beyond_the_statement_are_drafts(shipped: DeadlinePolicy) -> None:
    """Only the group's promise and cap are the statement's own words (8.4); every law's
    arithmetic waits for Legal."""
    assert not shipped.group.is_draft and shipped.group.confirmed_by == "privacy-statement"
    assert all(rules.is_draft for rules in shipped.jurisdictions.values())


def test_draft_rule_never_rolls_past_the_promise(shipped: DeadlinePolicy,
                                                 policy: DeadlinePolicy) -> None:
    # 2027-01-31 + 1 month = Sunday 2027-02-28: the law rolls to Monday 1 March...
    received = datetime(2027, 1, 31, 10, tzinfo=UTC)
    assert compute(policy, J.EU, [R.ACCESS], received).due_on == date(2027, 3, 1)
    # ...but while the rule is a draft the promise, one month, binds.
    draft = compute(shipped, J.EU, [R.ACCESS], received)
    assert draft.due_on == date(2027, 2, 28) and draft.rules_unconfirmed
    assert "rules unconfirmed" in draft.basis


def test_draft_clock_stop_never_passes_the_promise(shipped: DeadlinePolicy,
                                                   policy: DeadlinePolicy) -> None:
    received = datetime(2027, 3, 10, 9, tzinfo=UTC)
    assert compute(policy, J.UK, [R.ACCESS], received, paused_days=5).due_on == date(2027, 4, 15)
    assert compute(shipped, J.UK, [R.ACCESS], received, paused_days=5).due_on == date(2027, 4, 10)


def test_draft_rule_may_still_shorten_the_deadline(shipped: DeadlinePolicy) -> None:
    """A draft binds where it is stricter: Colombia's ten business days for a query."""
    draft = compute(shipped, J.CO, [R.ACCESS], datetime(2027, 3, 1, 15, tzinfo=UTC))
    assert draft.due_on == date(2027, 3, 15) and draft.rules_unconfirmed


def test_draft_extension_never_passes_the_group_cap(shipped: DeadlinePolicy) -> None:
    received = datetime(2027, 12, 31, 10, tzinfo=UTC)
    draft = compute(shipped, J.EU, [R.ACCESS], received)
    assert draft.extension_limit_on == date(2028, 2, 29)  # two months, no roll-over


def test_uk_period_counts_from_identity_confirmed(policy: DeadlinePolicy,
                                                  shipped: DeadlinePolicy) -> None:
    """UK GDPR Art. 12A: received 10 March, identity confirmed 20 March: due 20 April."""
    received = datetime(2027, 3, 10, 9, tzinfo=UTC)
    query = DeadlineQuery(jurisdiction=J.UK, rights=[R.ACCESS], received_at=received,
                          verified_at=datetime(2027, 3, 20, 16, tzinfo=UTC))
    confirmed = compute_deadline(query, policy)
    assert (confirmed.received_on, confirmed.due_on) == (date(2027, 3, 10), date(2027, 4, 20))
    assert confirmed.starts_at_verification
    # The EU counts from receipt whenever identity is confirmed.
    eu = compute_deadline(query.model_copy(update={"jurisdiction": J.EU}), policy)
    assert eu.due_on == date(2027, 4, 12)  # 10 April is a Saturday: rolls to Monday
    # While the UK rule is a draft, the promise (one month from receipt) binds.
    assert compute_deadline(query, shipped).due_on == date(2027, 4, 10)
