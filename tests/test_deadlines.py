"""Deadlines at the edges: every expected date below is worked out by hand from a calendar.

Weekdays used: 2027-02-06 Sat, 2027-02-28 Sun, 2027-04-27 Tue (King's Day), 2027-05-01 Sat,
2027-12-25 Sat, 2028-12-25 Mon, 2026-11-26 Thu (Thanksgiving).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dsr.deadline_policy import (
    DEFAULT_POLICY_PATH,
    DeadlinePolicy,
    PolicyError,
    load_deadline_policy,
)
from dsr.deadlines import (
    Deadline,
    DeadlineQuery,
    add_business_days,
    add_months,
    compute_deadline,
    end_of_day,
    is_working_day,
    next_working_day,
)
from dsr.models import Jurisdiction, Right
from dsr.provenance import RuleStatus

J = Jurisdiction
R = Right


def confirmed(policy: DeadlinePolicy) -> DeadlinePolicy:
    """The shipped rules as they bind once Legal has confirmed every jurisdiction's."""
    by_legal = {"status": RuleStatus.CONFIRMED, "confirmed_by": "legal-1",
                "confirmed_on": date(2026, 12, 7)}
    return policy.model_copy(update={"jurisdictions": {
        name: rules.model_copy(update=by_legal) for name, rules in policy.jurisdictions.items()
    }})


@pytest.fixture(scope="module")
def policy() -> DeadlinePolicy:
    return confirmed(load_deadline_policy())


@pytest.fixture(scope="module")
def shipped() -> DeadlinePolicy:
    return load_deadline_policy()


def tz(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


def compute(
    policy: DeadlinePolicy,
    jurisdiction: Jurisdiction,
    rights: list[Right],
    received_at: datetime,
    paused_days: int = 0,
) -> Deadline:
    query = DeadlineQuery(
        jurisdiction=jurisdiction,
        rights=rights,
        received_at=received_at,
        paused_days=paused_days,
    )
    return compute_deadline(query, policy)


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


# --- the policy file -----------------------------------------------------------------------


def test_policy_file_covers_every_jurisdiction(policy: DeadlinePolicy) -> None:
    assert policy.version == "2026-12-07"
    assert set(policy.jurisdictions) == set(Jurisdiction)
    assert policy.group.promise.months == 1
    assert policy.group.cap.months == 2


def test_policy_settings_per_jurisdiction(policy: DeadlinePolicy) -> None:
    rolls = {j for j, rules in policy.jurisdictions.items() if rules.rolls_over}
    stops = {j for j, rules in policy.jurisdictions.items() if rules.clock_stops_for_clarification}
    assert rolls == {J.EU, J.DE, J.UK}
    assert stops == {J.UK}
    assert policy.jurisdictions[J.EU].holiday_calendar.country == "NL"
    assert policy.jurisdictions[J.DE].holiday_calendar.country == "NL"
    assert policy.jurisdictions[J.DE].time_zone == "Europe/Amsterdam"
    assert policy.jurisdictions[J.SG].time_zone == "Asia/Singapore"


def test_policy_is_cached_per_path(policy: DeadlinePolicy) -> None:
    assert load_deadline_policy() is load_deadline_policy(DEFAULT_POLICY_PATH)


# --- GDPR (EU, DE): months, roll-over with the NL calendar, the group cap -------------------


def test_gdpr_jan_31_due_feb_28_rolls_from_sunday(policy: DeadlinePolicy) -> None:
    # 2027-01-31 + 1 month = Feb 28 (Sun) -> Mon Mar 1; target keeps Feb 28.
    d = compute(policy, J.EU, [R.ACCESS], datetime(2027, 1, 31, 12, tzinfo=UTC))
    assert d.received_on == date(2027, 1, 31)
    assert d.target_on == date(2027, 2, 28)
    assert d.due_on == date(2027, 3, 1)


def test_gdpr_leap_year_feb_29(policy: DeadlinePolicy) -> None:
    # 2028-01-31 (Mon) + 1 month = Tue 2028-02-29, a working day.
    d = compute(policy, J.EU, [R.ERASURE], datetime(2028, 1, 31, 9, tzinfo=UTC))
    assert d.target_on == d.due_on == date(2028, 2, 29)


def test_gdpr_mar_31_due_apr_30(policy: DeadlinePolicy) -> None:
    # 2027-03-31 + 1 month = Fri Apr 30. Cap: +2 months = Mon May 31 (GDPR would allow Jun 30).
    d = compute(policy, J.EU, [R.ACCESS], datetime(2027, 3, 31, 10, tzinfo=UTC))
    assert d.target_on == d.due_on == date(2027, 4, 30)
    assert d.extension_limit_on == date(2027, 5, 31)


def test_gdpr_saturday_rolls_to_monday(policy: DeadlinePolicy) -> None:
    # 2027-01-06 + 1 month = Sat Feb 6 -> Mon Feb 8. Cap Sat Mar 6 -> Mon Mar 8.
    d = compute(policy, J.EU, [R.ACCESS], datetime(2027, 1, 6, 10, tzinfo=UTC))
    assert d.target_on == date(2027, 2, 6)
    assert d.due_on == date(2027, 2, 8)
    assert d.extension_limit_on == date(2027, 3, 8)
    # 23:59:59.999999 CET (UTC+1) on Feb 8 is 22:59:59.999999 UTC.
    assert d.due_at == datetime(2027, 2, 8, 22, 59, 59, 999999, tzinfo=UTC)
    assert d.extension_notice_by == d.due_at
    assert "rolled over" in d.basis


@pytest.mark.parametrize("jurisdiction", [J.EU, J.DE])
def test_gdpr_kings_day_rolls_to_next_day(policy: DeadlinePolicy, jurisdiction: J) -> None:
    # 2027-03-27 + 1 month = Tue Apr 27, King's Day (NL calendar, also for DE) -> Wed Apr 28.
    d = compute(policy, jurisdiction, [R.ACCESS], datetime(2027, 3, 27, 11, tzinfo=UTC))
    assert d.target_on == date(2027, 4, 27)
    assert d.due_on == date(2027, 4, 28)


def test_gdpr_liberation_day_every_year_then_ascension(policy: DeadlinePolicy) -> None:
    # Algemene termijnenwet: 5 May counts every year (the package has it only each lustrum).
    # 2027-04-05 + 1 month = Wed May 5 (Liberation Day) -> Thu May 6 (Ascension) -> Fri May 7.
    d = compute(policy, J.EU, [R.ACCESS], datetime(2027, 4, 5, 9, tzinfo=UTC))
    assert d.target_on == date(2027, 5, 5)
    assert d.due_on == date(2027, 5, 7)


def test_gdpr_good_friday_is_a_working_day_in_nl(policy: DeadlinePolicy) -> None:
    # Good Friday is not among the Algemene termijnenwet's holidays: no roll-over.
    # 2027-02-26 + 1 month = Fri Mar 26, Good Friday -> due that day.
    d = compute(policy, J.EU, [R.ACCESS], datetime(2027, 2, 26, 9, tzinfo=UTC))
    assert d.due_on == date(2027, 3, 26)


def test_gdpr_christmas_on_weekdays_rolls_past_both_days(policy: DeadlinePolicy) -> None:
    # 2028-11-25 + 1 month = Mon Dec 25 (Christmas), Tue Dec 26 (2nd day) -> Wed Dec 27.
    d = compute(policy, J.EU, [R.ACCESS], datetime(2028, 11, 25, 11, tzinfo=UTC))
    assert d.target_on == date(2028, 12, 25)
    assert d.due_on == date(2028, 12, 27)


def test_gdpr_christmas_on_weekend_nl_has_no_substitute_days(policy: DeadlinePolicy) -> None:
    # 2027-11-25 + 1 month = Sat Dec 25; Sun Dec 26 -> Mon Dec 27 (NL observes no substitutes).
    d = compute(policy, J.EU, [R.ACCESS], datetime(2027, 11, 25, 11, tzinfo=UTC))
    assert d.target_on == date(2027, 12, 25)
    assert d.due_on == date(2027, 12, 27)


def test_gdpr_extension_capped_at_two_months(policy: DeadlinePolicy) -> None:
    # 2027-03-01: GDPR 1 + 2 months = Jun 1; group cap 2 months = Sat May 1 -> Mon May 3.
    d = compute(policy, J.EU, [R.ACCESS], datetime(2027, 3, 1, 10, tzinfo=UTC))
    assert d.due_on == date(2027, 4, 1)
    assert d.extension_limit_on == date(2027, 5, 3)
    assert "group cap" in d.basis


def test_eu_ignores_paused_days(policy: DeadlinePolicy) -> None:
    d = compute(policy, J.EU, [R.ACCESS], datetime(2027, 3, 1, 10, tzinfo=UTC), paused_days=10)
    assert d.target_on == d.due_on == date(2027, 4, 1)
    assert d.extension_limit_on == date(2027, 5, 3)
    assert d.clock_stops_for_clarification is False
    assert d.acknowledge_by_on is None


# --- UK: UK bank holidays, the clock stops -------------------------------------------------


def test_uk_christmas_rolls_past_substitute_bank_holidays(policy: DeadlinePolicy) -> None:
    # Target Sat 2027-12-25; Sun 26; Mon 27 and Tue 28 are substitute bank holidays -> Wed 29.
    d = compute(policy, J.UK, [R.ACCESS], datetime(2027, 11, 25, 11, tzinfo=UTC))
    assert d.target_on == date(2027, 12, 25)
    assert d.due_on == date(2027, 12, 29)


def test_uk_easter_rolls_over(policy: DeadlinePolicy) -> None:
    # 2027-02-26 + 1 month = Fri Mar 26 (Good Friday); Sat, Sun, Mon 29 Easter Monday -> Tue 30.
    d = compute(policy, J.UK, [R.ERASURE], datetime(2027, 2, 26, 11, tzinfo=UTC))
    assert d.target_on == date(2027, 3, 26)
    assert d.due_on == date(2027, 3, 30)


def test_uk_extension_rolls_past_early_may_bank_holiday(policy: DeadlinePolicy) -> None:
    # Cap 2027-03-01 + 2 months = Sat May 1; Sun 2; Mon 3 is the Early May bank holiday -> Tue 4.
    d = compute(policy, J.UK, [R.ACCESS], datetime(2027, 3, 1, 10, tzinfo=UTC))
    assert d.due_on == date(2027, 4, 1)
    assert d.extension_limit_on == date(2027, 5, 4)


def test_uk_paused_days_move_the_deadline(policy: DeadlinePolicy) -> None:
    # 2027-03-01 + 1 month = Apr 1, + 10 paused days = Sun Apr 11 -> Mon Apr 12.
    # Cap May 1 + 10 = Tue May 11.
    d = compute(policy, J.UK, [R.ACCESS], datetime(2027, 3, 1, 10, tzinfo=UTC), paused_days=10)
    assert d.target_on == date(2027, 4, 11)
    assert d.due_on == date(2027, 4, 12)
    assert d.extension_limit_on == date(2027, 5, 11)
    assert d.clock_stops_for_clarification is True
    assert "clock stopped 10 days" in d.basis


def test_uk_summer_time_end_of_day(policy: DeadlinePolicy) -> None:
    # 2027-06-01 + 1 month = Thu Jul 1; 23:59:59.999999 BST (UTC+1) = 22:59:59.999999 UTC.
    d = compute(policy, J.UK, [R.ACCESS], datetime(2027, 6, 1, 10, tzinfo=UTC))
    assert d.due_on == date(2027, 7, 1)
    assert d.due_at == datetime(2027, 7, 1, 22, 59, 59, 999999, tzinfo=UTC)


# --- California: 45 days vs the group month, business days over US holidays ----------------


def test_us_ca_group_month_binds_over_45_days(policy: DeadlinePolicy) -> None:
    # 2027-03-01: law 45 days = Apr 15; group 1 month = Apr 1 -> Apr 1 (no roll-over).
    # Extension: law 90 days = May 30; cap 2 months = Sat May 1 (stays: no roll-over).
    # Ack: 10 business days from Tue Mar 2: Mar 2-5 (4), 8-12 (9), Mon 15 (10).
    received = datetime(2027, 3, 1, 10, tzinfo=tz(-8))
    d = compute(policy, J.US_CA, [R.ACCESS], received)
    assert d.target_on == d.due_on == date(2027, 4, 1)
    assert d.extension_limit_on == date(2027, 5, 1)
    assert d.acknowledge_by_on == date(2027, 3, 15)
    assert d.basis.startswith("due: group promise")
    # Apr 1 is in daylight time (PDT, UTC-7): end of day is 06:59:59.999999 UTC on Apr 2.
    assert d.due_at == datetime(2027, 4, 2, 6, 59, 59, 999999, tzinfo=UTC)


def test_us_ca_opt_out_15_business_days_over_thanksgiving(policy: DeadlinePolicy) -> None:
    # Received 2026-11-10 06:00 UTC = Mon Nov 9 22:00 PST. Counting from Tue Nov 10:
    # 10 (1), Wed 11 Veterans Day, 12 (2), 13 (3), 16-20 (8), 23-25 (11),
    # Thu 26 Thanksgiving, Fri 27 Day after Thanksgiving, Mon 30 (12), Dec 1-3 (15) -> Dec 3.
    # (Weekdays alone would give Mon Nov 30.) Group month: Dec 9 -> law binds.
    d = compute(policy, J.US_CA, [R.OPT_OUT_SALE_SHARING], datetime(2026, 11, 10, 6, tzinfo=UTC))
    assert d.received_on == date(2026, 11, 9)
    assert d.target_on == d.due_on == date(2026, 12, 3)
    assert d.extension_limit_on is None
    assert d.extension_notice_by is None
    # Ack: Nov 10 (1), 12 (2), 13 (3), 16-20 (8), 23 (9), 24 (10).
    assert d.acknowledge_by_on == date(2026, 11, 24)
    assert "7026" in d.basis


def test_us_ca_limit_sensitive_is_15_business_days(policy: DeadlinePolicy) -> None:
    d = compute(policy, J.US_CA, [R.LIMIT_SENSITIVE], datetime(2026, 11, 10, 6, tzinfo=UTC))
    assert d.due_on == date(2026, 12, 3)
    assert d.extension_limit_on is None


def test_us_ca_mixed_rights_earliest_target_and_no_extension(policy: DeadlinePolicy) -> None:
    # Access alone: Dec 9 with extension; with the opt-out: Dec 3 and no extension at all.
    received = datetime(2026, 11, 10, 6, tzinfo=UTC)
    alone = compute(policy, J.US_CA, [R.ACCESS], received)
    assert alone.due_on == date(2026, 12, 9)
    assert alone.extension_limit_on == date(2027, 1, 9)
    mixed = compute(policy, J.US_CA, [R.ACCESS, R.OPT_OUT_SALE_SHARING], received)
    assert mixed.due_on == date(2026, 12, 3)
    assert mixed.extension_limit_on is None
    assert mixed.extension_notice_by is None


# --- Singapore: 30 days vs the month, local receipt date -----------------------------------


@pytest.mark.parametrize(
    ("received_on", "target"),
    [
        # Feb 1 2027: 30 days = Mar 3, 1 month = Mar 1 -> the month binds in February.
        (date(2027, 2, 1), date(2027, 3, 1)),
        # Feb 1 2028 (leap): 30 days = Mar 2, 1 month = Mar 1 -> the month binds.
        (date(2028, 2, 1), date(2028, 3, 1)),
        # Mar 1 2027: 30 days = Mar 31, 1 month = Apr 1 -> 30 days bind.
        (date(2027, 3, 1), date(2027, 3, 31)),
        # Apr 1 2027: 30 days = May 1 = 1 month -> both.
        (date(2027, 4, 1), date(2027, 5, 1)),
    ],
)
def test_sg_30_days_vs_month(policy: DeadlinePolicy, received_on: date, target: date) -> None:
    received = datetime.combine(received_on, datetime.min.time(), tzinfo=tz(8)).replace(hour=10)
    d = compute(policy, J.SG, [R.ACCESS], received)
    assert d.target_on == d.due_on == target
    assert d.extension_limit_on == add_months(received_on, 2)  # no fixed length: the cap


def test_sg_receipt_near_midnight_utc_is_next_local_day(policy: DeadlinePolicy) -> None:
    # 2027-01-31 16:30 UTC = Feb 1 00:30 SGT -> received Feb 1 -> due Mar 1 (not Feb 28).
    d = compute(policy, J.SG, [R.ACCESS], datetime(2027, 1, 31, 16, 30, tzinfo=UTC))
    assert d.received_on == date(2027, 2, 1)
    assert d.due_on == date(2027, 3, 1)
    assert d.extension_limit_on == date(2027, 4, 1)
    # 23:59:59.999999 SGT (UTC+8) on Mar 1 = 15:59:59.999999 UTC.
    assert d.due_at == datetime(2027, 3, 1, 15, 59, 59, 999999, tzinfo=UTC)
    # The same instant is still Jan 31 in Amsterdam (17:30 CET).
    eu = compute(policy, J.EU, [R.ACCESS], datetime(2027, 1, 31, 16, 30, tzinfo=UTC))
    assert eu.received_on == date(2027, 1, 31)


# --- Australia, Brazil, China: no roll-over, no extension where the law has none ----------


def test_au_30_days_no_extension(policy: DeadlinePolicy) -> None:
    # Mar 1 2027 Sydney: 30 days = Mar 31, 1 month = Apr 1 -> Mar 31.
    d = compute(policy, J.AU, [R.ACCESS], datetime(2027, 3, 1, 10, tzinfo=tz(11)))
    assert d.target_on == d.due_on == date(2027, 3, 31)
    assert d.extension_limit_on is None
    assert d.extension_notice_by is None


def test_au_does_not_roll_over(policy: DeadlinePolicy) -> None:
    # Jan 31 2027: month = Sun Feb 28 (30 days = Mar 2) -> stays Sunday Feb 28.
    d = compute(policy, J.AU, [R.RECTIFICATION], datetime(2027, 1, 31, 10, tzinfo=tz(11)))
    assert d.target_on == d.due_on == date(2027, 2, 28)


def test_br_access_15_days_no_extension(policy: DeadlinePolicy) -> None:
    # Mar 1 2027 São Paulo + 15 days = Mar 16.
    d = compute(policy, J.BR, [R.ACCESS], datetime(2027, 3, 1, 12, tzinfo=tz(-3)))
    assert d.target_on == d.due_on == date(2027, 3, 16)
    assert d.extension_limit_on is None
    assert d.extension_notice_by is None
    assert "Art. 19" in d.basis


def test_br_other_rights_use_group_month_and_cap(policy: DeadlinePolicy) -> None:
    # Mar 1 2027 + 1 month = Apr 1; cap + 2 months = Sat May 1 (no roll-over).
    d = compute(policy, J.BR, [R.ERASURE], datetime(2027, 3, 1, 12, tzinfo=tz(-3)))
    assert d.due_on == date(2027, 4, 1)
    assert d.extension_limit_on == date(2027, 5, 1)


def test_br_mixed_access_and_erasure(policy: DeadlinePolicy) -> None:
    d = compute(policy, J.BR, [R.ERASURE, R.ACCESS], datetime(2027, 3, 1, 12, tzinfo=tz(-3)))
    assert d.due_on == date(2027, 3, 16)
    assert d.extension_limit_on is None


def test_cn_group_month_no_roll_over(policy: DeadlinePolicy) -> None:
    # Jan 31 2027 Shanghai + 1 month = Sun Feb 28 (stays); cap Mar 31.
    d = compute(policy, J.CN, [R.ACCESS], datetime(2027, 1, 31, 10, tzinfo=tz(8)))
    assert d.target_on == d.due_on == date(2027, 2, 28)
    assert d.extension_limit_on == date(2027, 3, 31)


# --- Colombia: business days over Colombian holidays ---------------------------------------


def test_co_query_10_business_days_over_holidays(policy: DeadlinePolicy) -> None:
    # Received Fri 2027-03-12 22:00 Bogota (Mar 13 03:00 UTC). Counting from Mon Mar 15:
    # 15-19 (5), Mon 22 St Joseph (observed), 23 (6), 24 (7), Thu 25 Maundy Thursday,
    # Fri 26 Good Friday, 29 (8), 30 (9), 31 (10) -> Mar 31.
    # Extension +5: Apr 1 (11), 2 (12), 5 (13), 6 (14), 7 (15) -> Apr 7.
    d = compute(policy, J.CO, [R.ACCESS], datetime(2027, 3, 13, 3, tzinfo=UTC))
    assert d.received_on == date(2027, 3, 12)
    assert d.target_on == d.due_on == date(2027, 3, 31)
    assert d.extension_limit_on == date(2027, 4, 7)
    assert "Art. 14" in d.basis


def test_co_claim_15_business_days_over_holidays(policy: DeadlinePolicy) -> None:
    # As above to Mar 31 (10), then Apr 1 (11), 2 (12), 5 (13), 6 (14), 7 (15) -> Apr 7.
    # Extension +8: 8, 9, 12, 13, 14, 15, 16, 19 -> Apr 19 (total 23 business days).
    d = compute(policy, J.CO, [R.ERASURE], datetime(2027, 3, 12, 17, tzinfo=tz(-5)))
    assert d.target_on == d.due_on == date(2027, 4, 7)
    assert d.extension_limit_on == date(2027, 4, 19)
    assert "Art. 15" in d.basis


def test_co_query_and_claim_together(policy: DeadlinePolicy) -> None:
    # The earlier target (query) binds, and the earlier extension limit.
    rights = [R.RECTIFICATION, R.PORTABILITY]
    d = compute(policy, J.CO, rights, datetime(2027, 3, 12, 17, tzinfo=tz(-5)))
    assert d.due_on == date(2027, 3, 31)
    assert d.extension_limit_on == date(2027, 4, 7)


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


# --- bad policy files ----------------------------------------------------------------------


def _raw_policy() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: object, name: str = "deadlines.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_policy_copy_loads(tmp_path: Path) -> None:
    loaded = load_deadline_policy(_write(tmp_path, _raw_policy()))
    assert loaded == load_deadline_policy()


def test_bad_field_names_file_and_path(tmp_path: Path) -> None:
    data = _raw_policy()
    data["jurisdictions"]["EU"]["periods"]["default"]["months"] = 0
    path = _write(tmp_path, data, "bad.yaml")
    with pytest.raises(PolicyError) as caught:
        load_deadline_policy(path)
    message = str(caught.value)
    assert "bad.yaml" in message
    assert "jurisdictions.EU.periods.default.months" in message
    assert "greater than or equal to 1" in message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["jurisdictions"]["UK"]["periods"]["default"].update(days=30),
            "jurisdictions.UK.periods.default: give exactly one of months",
        ),
        (
            lambda d: d["jurisdictions"]["SG"].update(time_zone="Asia/Nowhere"),
            "jurisdictions.SG.time_zone: not an IANA time zone",
        ),
        (
            lambda d: d["jurisdictions"]["CO"]["holiday_calendar"].update(country="XX"),
            "jurisdictions.CO.holiday_calendar: not a country",
        ),
        (
            lambda d: d["jurisdictions"]["EU"].update(roll_over=True),
            "jurisdictions.EU.roll_over: Extra inputs are not permitted",
        ),
        (
            lambda d: d["jurisdictions"]["US-CA"]["periods"]["rights"].update(opt_out={"days": 1}),
            "jurisdictions.US-CA.periods.rights.opt_out.[key]",
        ),
        (
            lambda d: d["jurisdictions"]["CO"]["periods"]["default"].update(extension={}),
            "jurisdictions.CO.periods.default.extension: give exactly one of",
        ),
        (
            lambda d: d["group"].update(cap={"months": 2, "extension": {"months": 1}}),
            "group.cap.extension: Extra inputs are not permitted",
        ),
        (lambda d: d["jurisdictions"].pop("CN"), "jurisdictions: missing CN"),
        (lambda d: d.pop("version"), "version: Field required"),
    ],
)
def test_policy_errors_name_the_field_path(
    tmp_path: Path, edit: Callable[[dict[str, Any]], object], expected: str
) -> None:
    data = _raw_policy()
    edit(data)
    with pytest.raises(PolicyError, match=r"deadlines\.yaml") as caught:
        load_deadline_policy(_write(tmp_path, data))
    assert expected in str(caught.value)


def test_policy_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"absent\.yaml"):
        load_deadline_policy(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: [unclosed\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"broken\.yaml: not valid YAML"):
        load_deadline_policy(broken)
    listing = _write(tmp_path, ["not", "a", "mapping"], "list.yaml")
    with pytest.raises(PolicyError, match=r"list\.yaml: \(top level\)"):
        load_deadline_policy(listing)


def test_unquoted_version_date_is_read_as_text(tmp_path: Path) -> None:
    data = _raw_policy()
    data["version"] = date(2026, 12, 1)  # dumped unquoted, read back by YAML as a date
    assert load_deadline_policy(_write(tmp_path, data)).version == "2026-12-01"


def test_edited_file_is_read_again(tmp_path: Path) -> None:
    data = _raw_policy()
    path = _write(tmp_path, data)
    assert load_deadline_policy(path).version == "2026-12-07"
    data["version"] = "2026-12-02"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    # A different size and content; bump the mtime explicitly for coarse file systems.
    stamp = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))
    assert load_deadline_policy(path).version == "2026-12-02"


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
