"""compute_deadline per jurisdiction, with Legal's rules confirmed: months, roll-over, holidays,
business days, stopped clocks and extension limits, every expected date worked out by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from dsr.deadline_policy import DeadlinePolicy
from dsr.deadlines import add_months
from tests.deadline_rules import J, R, compute, tz
from tests.deadline_rules import policy as policy  # the fixture

# Weekdays used: 2027-02-06 Sat, 2027-02-28 Sun, 2027-04-27 Tue (King's Day), 2027-05-01 Sat,
# 2027-12-25 Sat, 2028-12-25 Mon, 2026-11-26 Thu (Thanksgiving).


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
