"""``docs/legal.md``, the one page Legal reviews, generated from the policy files: for each
jurisdiction the deadline, extension, counting rules, where to complain, sources and status;
then every other rule and text with its status. ``starter.py rules doc`` writes it; a test
fails when the committed page and the files disagree."""

from __future__ import annotations

from pathlib import Path

from dsr import rules
from dsr.catalogue import Authorities, load_authorities
from dsr.deadline_policy import (
    DeadlinePolicy,
    JurisdictionPolicy,
    LawPeriod,
    load_deadline_policy,
)
from dsr.models import Jurisdiction, Language
from dsr.provenance import Provenance

HEADER = """# Rules and texts for Legal's review

Generated from `dsr/policy/*.yaml` by `python starter.py rules doc`: do not edit by hand.
A **draft** decides nothing on its own: a draft deadline is never later than the group's
promise, and an answer stating a draft text waits for an approver's review. Confirm an entry
with `python starter.py rules confirm FILE ADDRESS` (roles `legal` or `administrator`); the
confirmation is kept in the audit ledger with the fingerprint of the text confirmed.
"""


def render(policy_dir: Path) -> str:
    deadlines = load_deadline_policy(policy_dir / "deadlines.yaml")
    authorities = load_authorities(policy_dir / "authorities.yaml")
    parts = [HEADER, _group(deadlines)]
    parts += [_jurisdiction(j, deadlines, authorities) for j in Jurisdiction]
    parts.append(_other_entries(policy_dir))
    return "\n".join(parts)


def _status(entry: Provenance) -> str:
    if entry.is_draft:
        return f"**draft** (source: {entry.source})"
    return f"confirmed by {entry.confirmed_by} on {entry.confirmed_on} (source: {entry.source})"


def _group(policy: DeadlinePolicy) -> str:
    group = policy.group
    return (f"## The group's promise\n\nAn answer within {group.promise.describe()} of receipt;"
            f" an extension never beyond {group.cap.describe()} from receipt. "
            f"Status: {_status(group)}.\n")


def _jurisdiction(jurisdiction: Jurisdiction, deadlines: DeadlinePolicy,
                  authorities: Authorities) -> str:
    rules_ = deadlines.jurisdictions[jurisdiction]
    lines = [f"## {jurisdiction.value}", "", f"Deadline rules: {_status(rules_)}.", ""]
    lines += [f"- {right}: {_period(period, rules_)}" for right, period in _periods(rules_)]
    lines += _counting(rules_)
    lines += ["", "What the answer says:", ""]
    texts = authorities.texts_used(jurisdiction, access=True)
    for name, text in texts.items():
        lines.append(f"- {name}: {_status(text)}")
        lines.append(f"  > {text.in_language(Language.EN)}")
    return "\n".join(lines) + "\n"


def _periods(rules_: JurisdictionPolicy) -> list[tuple[str, LawPeriod]]:
    own = [(right.value, period) for right, period in rules_.periods.rights.items()]
    return [("every other right" if own else "every right", rules_.periods.default), *own]


def _period(period: LawPeriod, rules_: JurisdictionPolicy) -> str:
    extension = period.extension
    if extension is None:
        added = "no extension"
    elif extension.period is None:
        added = "extension of no fixed length in law (the group's cap)"
    else:
        added = f"extension +{extension.period.describe()}"
    return f"{period.describe()}, {added} ({period.basis or rules_.basis})"


def _counting(rules_: JurisdictionPolicy) -> list[str]:
    calendar = rules_.holiday_calendar
    place = calendar.country + (f"-{calendar.subdivision}" if calendar.subdivision else "")
    facts = [f"time zone {rules_.time_zone}; public holidays of {place}",
             "a deadline on a weekend or holiday moves to the next working day"
             if rules_.rolls_over else "no roll-over to the next working day"]
    if rules_.clock_stops_for_clarification:
        facts.append("the clock stops while clarification of what the request covers is awaited")
    if rules_.period_starts_at_verification:
        facts.append("the period starts once identity is confirmed")
    if rules_.acknowledge_within is not None:
        facts.append(f"receipt confirmed within {rules_.acknowledge_within.describe()}")
    return ["", "Counting: " + "; ".join(facts) + "."]


def _other_entries(policy_dir: Path) -> str:
    shown = {"deadlines.yaml", "authorities.yaml"}
    lines = ["## Other rules and texts", "", "| file | entry | status | source |",
             "|---|---|---|---|"]
    for entry in rules.entries(policy_dir):
        if entry.file in shown:
            continue
        status = (f"confirmed by {entry.confirmed_by} on {entry.confirmed_on}"
                  if entry.confirmed_by else f"**{entry.status.value}**")
        lines.append(f"| {entry.file} | {entry.address} | {status} | {entry.source} |")
    return "\n".join(lines) + "\n"
