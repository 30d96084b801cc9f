"""dsr/deadline_policy.py: the shipped policy file, its loading and caching, and the errors a bad
file gets (each naming the file and the field's path)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from dsr.deadline_policy import (
    DEFAULT_POLICY_PATH,
    DeadlinePolicy,
    PolicyError,
    load_deadline_policy,
)
from dsr.models import Jurisdiction
from tests.deadline_rules import J
from tests.deadline_rules import policy as policy  # the fixture

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
