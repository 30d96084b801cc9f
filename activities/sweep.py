"""The retention sweep's plan and its record: what each connector anonymises when no request
asks for it, because the data has outlived its retention.

For each connector that serves ``sweep``, each declared category gets the period after which
it must not stay identifiable: the longest period of the retention rules covering it (a
``must_keep`` duty is never cut short by a shorter ``keep_at_most``), with a country's longer
duty as an extra rule confined to that country. A category no rule gives a period (kept for
the contract) is not swept. A category an active legal hold may cover is not swept at all: a
sweep reaches every customer and subject, so it cannot leave one subject's records out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from temporalio import activity

from activities.interfaces.sweep import (
    PLAN_SWEEP,
    RECORD_SWEEP,
    ConnectorSweep,
    RecordSweep,
    SweepPlan,
    SweepPlanQuery,
    SweepReport,
)
from dsr import ledger
from dsr.connector_contract import EraseRule, Operation
from dsr.connector_registry import ConnectorEntry, Registry, load_registry
from dsr.holds import Hold, active_holds
from dsr.retention import Period, RetentionPolicy, erasable_before, load_retention_policy
from dsr.settings import Settings

SWEEP_ACTOR = "retention-sweep-schedule"


def plan_sweep(
    policy: RetentionPolicy, registry: Registry, as_of: datetime, holds: Iterable[Hold] = ()
) -> list[ConnectorSweep]:
    """The sweep rules of every connector serving ``sweep``, as of ``as_of``."""
    holds = list(holds)
    plan = []
    for entry in registry.connectors:
        if not entry.supports(Operation.SWEEP) or entry.task_queue is None:
            continue  # a recipient instructed by email has no sweep to call
        part = ConnectorSweep(connector=entry.name, task_queue=entry.task_queue)
        for category in entry.categories:
            held = [hold.hold_id for hold in holds if _may_cover(hold, entry, category)]
            periods = category_periods(policy, entry.name, category)
            if periods is None:
                continue
            if held:
                part.held[category] = held
                continue
            default, by_country = periods
            if by_country and not entry.keeps_country:  # one rule, never early
                default = max([default, *by_country.values()], key=lambda p: p.in_months)
                by_country = {}
            part.rules.append(EraseRule(category=category, before=erasable_before(as_of, default)))
            part.rules += [
                EraseRule(
                    category=category,
                    before=erasable_before(as_of, period),
                    countries_ended=[country],
                )
                for country, period in sorted(by_country.items())
            ]
        plan.append(part)
    return plan


def category_periods(
    policy: RetentionPolicy, connector: str, category: str
) -> tuple[Period, dict[str, Period]] | None:
    """The period after which ``category`` may no longer stay identifiable, and the periods
    of the countries where it differs (longer where a communication ended; the contracting
    entity's, shorter or longer); None when no rule covering it has a period."""
    rules = [
        rule
        for rule in policy.rules
        if rule.period is not None and rule.covers_category(connector, category)
    ]
    if not rules:
        return None
    default = _longest(rule.period for rule in rules if rule.period is not None)
    countries = {override.country for rule in rules for override in rule.overrides}
    by_country: dict[str, Period] = {}
    for country in sorted(countries):
        # Each rule binds in that country as its country_of says; the longest binds.
        period = _longest(rule.duty([country]).period for rule in rules)
        if period.in_months != default.in_months:
            by_country[country] = period
    return default, by_country


def _longest(periods: Iterable[Period]) -> Period:
    return max(periods, key=lambda period: period.in_months)


def _may_cover(hold: Hold, entry: ConnectorEntry, category: str) -> bool:
    """Whether the hold may keep some of this category's records. A hold on a subject or a
    customer account counts too: a sweep cannot leave one subject's records out."""
    return (hold.product is None or hold.product in entry.products) and (
        hold.category is None or hold.category == category
    )


class SweepActivities:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._settings = settings
        self._engine = engine
        self._key = ledger.ledger_key(settings.secret)

    @activity.defn(name=PLAN_SWEEP.name)
    def sweep_plan(self, query: SweepPlanQuery) -> SweepPlan:
        settings = self._settings
        policy = load_retention_policy(settings.policy_dir / "retention.yaml")
        registry = load_registry(settings.connector_registry)
        holds = active_holds(self._engine, query.as_of)
        return SweepPlan(
            as_of=query.as_of,
            policy_version=policy.version,
            connectors=plan_sweep(policy, registry, query.as_of, holds),
            start_timeout_seconds=settings.connector_start_timeout_seconds,
            heartbeat_seconds=settings.connector_heartbeat_seconds,
            max_attempts=settings.connector_max_attempts,
            retry_seconds=settings.connector_retry_seconds,
        )

    @activity.defn(name=RECORD_SWEEP.name)
    def record_sweep(self, record: RecordSweep) -> int:
        """One ledger entry of kind ``sweep`` with the counts; a retry (or a run of the same
        sweep that found everything already done) adds no second identical entry. Returns
        the entry's sequence number."""
        detail = ledger_detail(record.report)
        with Session(self._engine) as session, session.begin():
            recorded = session.scalars(
                select(ledger.LedgerEntry)
                .where(ledger.LedgerEntry.kind == "sweep", ledger.LedgerEntry.actor == SWEEP_ACTOR)
                .order_by(ledger.LedgerEntry.seq.desc())
                .limit(50)
            )
            for entry in recorded:
                if entry.detail == detail:
                    return entry.seq
            entry = ledger.append(session, "sweep", SWEEP_ACTOR, record.at, None, detail, self._key)
            return entry.seq


def ledger_detail(report: SweepReport) -> dict[str, Any]:
    """The report as the ledger stores it (ids, counts, connector names, reasons), so that an
    identical retry is recognised."""
    detail = report.model_dump(mode="json", exclude={"already_done"})
    detail["total"] = report.total
    loaded: dict[str, Any] = json.loads(json.dumps(detail, default=str))
    return loaded
