"""Retention rules that limit erasure, and the erasure plan they give.

The rules live in ``dsr/policy/retention.yaml``. A ``must_keep`` rule is a legal duty: records
younger than its period are kept, and the answer says what was kept, why and until when. A
``keep_at_most`` rule is a maximum and never blocks an erasure. A rule may differ by country:
where the communication ended (SMS, Voice), or the country of the affiliate the customer
contracts with (financial records); connectors report that country per holding in
``countries_ended``. Periods count in whole days: a record is kept through the last day of its
period.

``plan_erasure`` is pure: it takes the connectors' discoveries, the workflow's "as of" time and
the policy, and returns which records each connector erases and which it keeps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from dsr.connector_contract import CategoryHolding, Discovery, EraseRule
from dsr.holds import Hold, HoldKind
from dsr.models import Language, StrictModel
from dsr.policy_files import LocalText as LocalText
from dsr.policy_files import PolicyError as PolicyError
from dsr.policy_files import SourcedText
from dsr.policy_files import read_policy_file as read_policy_file
from dsr.provenance import Provenance
from dsr.retention_periods import (
    Period,
    add_period,
    erasable_before,
    longer,
    utc,
)

POLICY_DIR = Path(__file__).parent / "policy"
RETENTION_FILE = POLICY_DIR / "retention.yaml"
ORCHESTRATOR = "orchestrator"  # the orchestrator's own records: never planned here
ALL_CATEGORIES = "*"

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")]
CategoryName = Annotated[str, Field(pattern=r"^(\*|[a-z][a-z0-9_]{1,40})$")]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]


class RuleKind(StrEnum):
    MUST_KEEP = "must_keep"  # a legal duty: blocks erasure until the period ends
    KEEP_AT_MOST = "keep_at_most"  # a maximum: never blocks erasure


class CountryOf(StrEnum):
    """Whose country decides a rule's overrides (connectors report it per holding)."""

    # Where the communication ended: the rule's period binds everywhere, and a country's
    # override lengthens it (the longest binds).
    COMMUNICATION_ENDED = "communication_ended"
    # The country of the affiliate the customer contracts with: that country's duty binds,
    # shorter or longer; the rule's own period binds only where no country rule is known.
    CONTRACTING_ENTITY = "contracting_entity"


class CountryOverride(Provenance):
    """The duty in one country (where the communication ended, or of the contracting
    entity, as the rule's ``country_of`` says)."""

    country: Country
    period: Period
    basis: LocalText | None = None


class Duty(BaseModel):
    """The must-keep duty that binds one holding."""

    rule_id: str
    period: Period
    basis: LocalText
    draft: bool = False  # from a rule or country override Legal has not confirmed


class RetentionRule(Provenance):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")]
    kind: RuleKind
    covers: Annotated[
        dict[Name, Annotated[list[CategoryName], Field(min_length=1)]], Field(min_length=1)
    ]
    period: Period | None = None
    basis: LocalText
    country_of: CountryOf = CountryOf.COMMUNICATION_ENDED
    overrides: list[CountryOverride] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> RetentionRule:
        if self.kind is RuleKind.MUST_KEEP and self.period is None:
            raise ValueError("a must_keep rule needs a period, for example {months: 6}")
        repeated = [c for c, n in Counter(o.country for o in self.overrides).items() if n > 1]
        if repeated:
            raise ValueError(f"overrides name a country more than once: {', '.join(repeated)}")
        return self

    def covers_category(self, connector: str, category: str) -> bool:
        categories = self.covers.get(connector, [])
        return ALL_CATEGORIES in categories or category in categories

    def _draft_shortening(self, override: CountryOverride) -> bool:
        """A draft never makes an erasure earlier: a shorter entity duty Legal has not
        confirmed leaves the rule's own period binding."""
        assert self.period is not None
        return (override.is_draft and self.country_of is CountryOf.CONTRACTING_ENTITY
                and longer(self.period, override.period))

    def duty(self, countries: list[str]) -> Duty:
        """The duty for records whose deciding country is one of ``countries`` (the longest
        where they differ). Where the communication ended, an override only lengthens the
        rule's own period; for the contracting entity, a country's duty replaces it, and the
        rule's period binds for a country without a rule (or none reported)."""
        assert self.period is not None, "only must_keep rules bind a duty"
        known = {override.country: override for override in self.overrides
                 if not self._draft_shortening(override)}
        wanted = {country.upper() for country in countries}
        duties = [
            Duty(
                rule_id=self.id,
                period=known[country].period,
                basis=known[country].basis or self.basis,
                draft=self.is_draft or known[country].is_draft,
            )
            for country in sorted(wanted & known.keys())
        ]
        without_rule = not wanted or bool(wanted - known.keys())
        if self.country_of is CountryOf.COMMUNICATION_ENDED or without_rule:
            duties.insert(0, Duty(rule_id=self.id, period=self.period, basis=self.basis,
                                  draft=self.is_draft))
        return _longest_duty(duties)


class RetentionPolicy(StrictModel):
    version: Annotated[str, Field(min_length=1)]
    rules: list[RetentionRule]
    hold_basis: dict[HoldKind, SourcedText]  # what the answer says of data a legal hold keeps
    # What an erasure in a connector leaves behind, and why: the answer says so when that
    # connector erased the person's data (connector -> text).
    after_erasure: dict[Name, SourcedText] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_ids(self) -> RetentionPolicy:
        repeated = [i for i, n in Counter(rule.id for rule in self.rules).items() if n > 1]
        if repeated:
            raise ValueError(f"rule ids must be unique: {', '.join(repeated)} repeated")
        return self

    def without_drafts(self) -> RetentionPolicy:
        """The policy as Legal has confirmed it: draft rules and country overrides left out
        (an approver's decision not to apply them)."""
        confirmed = [
            rule.model_copy(update={"overrides": [o for o in rule.overrides if not o.is_draft]})
            for rule in self.rules if not rule.is_draft
        ]
        return self.model_copy(update={"rules": confirmed})

    def must_keep(self, connector: str, category: str) -> list[RetentionRule]:
        return [
            rule
            for rule in self.rules
            if rule.kind is RuleKind.MUST_KEEP and rule.covers_category(connector, category)
        ]

    def binding_duty(self, connector: str, holding: CategoryHolding) -> Duty | None:
        """The longest must-keep duty for a holding, or None when nothing blocks erasure."""
        return self.duty_for(connector, holding.category, holding.countries_ended)

    def duty_for(self, connector: str, category: str, countries: list[str]) -> Duty | None:
        """The longest must-keep duty for records of ``category`` whose deciding country (see
        ``CountryOf``) is any of these (none reported: the rules' own periods)."""
        longest: Duty | None = None
        for rule in self.must_keep(connector, category):
            duty = rule.duty(countries)
            if longest is None or longer(duty.period, longest.period):
                longest = duty
        return longest


class RetainedPart(BaseModel):
    """Records of one category a connector keeps despite the erasure, and why."""

    connector: str
    category: str
    rule_id: str
    draft_rule: bool = False  # kept under a rule Legal has not confirmed: the answer is reviewed
    basis: str  # the legal basis, in English
    basis_translations: dict[Language, str] = Field(default_factory=dict)
    records_until: datetime | None  # records dated on/after this cutoff are kept (None: all)
    until: date | None  # when the last retained record may be erased (None: until released)
    countries_ended: list[str] | None = None  # only records of these deciding countries


class ErasurePlan(BaseModel):
    policy_version: str
    rules: dict[str, list[EraseRule]] = Field(default_factory=dict)  # connector -> instructions
    retained: list[RetainedPart] = Field(default_factory=list)

    def erase_at(self) -> datetime | None:
        """When the earliest retained part becomes erasable: the start (UTC) of the day after
        its ``until``. None when nothing is retained for a known period."""
        days = [part.until for part in self.retained if part.until is not None]
        if not days:
            return None
        return datetime.combine(min(days) + timedelta(days=1), time.min, tzinfo=UTC)


def plan_erasure(
    discoveries: list[Discovery],
    as_of: datetime,
    policy: RetentionPolicy,
    declared_categories: dict[str, set[str]] | None = None,
    held: Callable[[str, str], Hold | None] | None = None,
) -> ErasurePlan:
    """Which records each connector erases now, and which the retention duties and legal
    holds keep. A connector in ``declared_categories`` is sent rules for its declared
    categories only; ``held(connector, category)`` names the legal hold keeping a category of
    this subject's data, which is then not erased at all."""
    plan = ErasurePlan(policy_version=policy.version)
    for discovery in discoveries:
        if discovery.connector == ORCHESTRATOR:
            continue
        for holding in discovery.holdings:
            if holding.records == 0:
                continue
            declared = (declared_categories or {}).get(discovery.connector)
            if declared is not None and holding.category not in declared:
                continue  # not in the connector's contract: never sent to it
            hold = held(discovery.connector, holding.category) if held else None
            if hold is not None:
                plan.retained.append(_held_part(discovery.connector, holding, hold, policy))
                continue
            for rule, kept in _plan_holding(discovery.connector, holding, utc(as_of), policy):
                plan.rules.setdefault(discovery.connector, []).append(rule)
                if kept is not None:
                    plan.retained.append(kept)
    return plan


def _plan_holding(
    connector: str, holding: CategoryHolding, as_of: datetime, policy: RetentionPolicy
) -> list[tuple[EraseRule, RetainedPart | None]]:
    """One rule for the holding, or, where the countries in which its communications ended
    bind different duties, one rule per group of countries sharing a duty."""
    groups: dict[str, list[str]] = {}
    duties: dict[str, Duty | None] = {}
    for country in holding.countries_ended:
        duty = policy.duty_for(connector, holding.category, [country])
        key = duty.model_dump_json() if duty else ""
        groups.setdefault(key, []).append(country)
        duties[key] = duty
    if len(groups) <= 1:
        duty = policy.binding_duty(connector, holding)
        return [_plan_part(connector, holding.category, duty, as_of, holding.latest, None)]
    return [
        _plan_part(
            connector,
            holding.category,
            duties[key],
            as_of,
            _latest_in(holding, countries),
            sorted(countries),
        )
        for key, countries in groups.items()
    ]


def _held_part(
    connector: str, holding: CategoryHolding, hold: Hold, policy: RetentionPolicy
) -> RetainedPart:
    """All of the category stays while the hold is active: until its end date, if any, or
    the longer duty of the retention rules (the stricter binds); else until released."""
    basis = policy.hold_basis[hold.kind]
    until = hold.until
    duty = policy.binding_duty(connector, holding)
    if until is not None and duty is not None and holding.latest is not None:
        until = max(until, add_period(utc(holding.latest), duty.period).date())
    return RetainedPart(
        connector=connector,
        category=holding.category,
        rule_id=hold.hold_id,
        basis=basis.en,
        basis_translations=basis.translations(),
        records_until=None,
        until=until,
    )


def _plan_part(
    connector: str,
    category: str,
    duty: Duty | None,
    as_of: datetime,
    latest: datetime | None,
    countries: list[str] | None,
) -> tuple[EraseRule, RetainedPart | None]:
    if duty is None:
        return EraseRule(category=category, before=None, countries_ended=countries), None
    cutoff = erasable_before(as_of, duty.period)
    rule = EraseRule(category=category, before=cutoff, countries_ended=countries)
    # Unknown dates: assume the newest possible record, so the promised date is never early.
    newest = utc(latest) if latest is not None else as_of
    if newest < cutoff:
        return rule, None
    return rule, RetainedPart(
        connector=connector,
        category=category,
        rule_id=duty.rule_id,
        draft_rule=duty.draft,
        basis=duty.basis.en,
        basis_translations=duty.basis.translations(),
        records_until=cutoff,
        until=add_period(newest, duty.period).date(),
        countries_ended=countries,
    )


def _latest_in(holding: CategoryHolding, countries: list[str]) -> datetime | None:
    """The newest record among these countries; the holding's newest where not reported."""
    dates = [holding.latest_by_country.get(country) for country in countries]
    if any(moment is None for moment in dates):
        return holding.latest
    return max(moment for moment in dates if moment is not None)


def keep_until(
    policy: RetentionPolicy, connector: str, category: str, dated: datetime
) -> datetime | None:
    """When a record dated ``dated`` may be erased: its date plus the longest must-keep period
    (e.g. a request confirmation: ``"orchestrator", "request_confirmation"``); None when no
    duty keeps it."""
    duty = policy.binding_duty(connector, CategoryHolding(category=category, records=1))
    return add_period(utc(dated), duty.period) if duty else None


def _longest_duty(duties: list[Duty]) -> Duty:
    """The longest duty; of equally long ones, the first."""
    longest = duties[0]
    for duty in duties[1:]:
        if longer(duty.period, longest.period):
            longest = duty
    return longest


def load_retention_policy(path: Path | None = None) -> RetentionPolicy:
    return read_policy_file(path or RETENTION_FILE, RetentionPolicy)
