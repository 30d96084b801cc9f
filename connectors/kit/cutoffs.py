"""What erase and sweep rules reach: the widest cutoff per category, the conditions for a
connector that keeps countries, and the ids of the rows a sweep anonymises, in chunks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from connectors.kit.activities import heartbeat
from connectors.kit.errors import ConnectorInputError
from dsr.connector_contract import EraseRule

END_OF_TIME = datetime.max.replace(tzinfo=UTC)
SWEEP_CHUNK_ROWS = 10_000


def sweep_cutoffs(
    connector: str, rules: list[EraseRule], categories: Iterable[str], countries: bool = False
) -> dict[str, datetime]:
    """The widest cutoff per category of a sweep; a rule without ``before`` is refused (a
    sweep never erases everything), and so is a rule confined to countries unless the
    connector keeps them (``countries``)."""
    known = set(categories)
    cutoffs: dict[str, datetime] = {}
    for rule in rules:
        if rule.countries_ended is not None and not countries:
            raise ConnectorInputError(
                f"{connector} keeps no country: the sweep rule for {rule.category} cannot be "
                "confined to countries_ended"
            )
        if rule.category not in known:
            raise ConnectorInputError(f"{connector} holds no category named {rule.category!r}")
        if rule.before is None:
            raise ConnectorInputError(f"sweep rule for {rule.category} needs a 'before' cutoff")
        if rule.before.tzinfo is None:
            raise ConnectorInputError(f"sweep rule for {rule.category} needs a timezone")
        cutoffs[rule.category] = max(rule.before, cutoffs.get(rule.category, rule.before))
    return cutoffs


def id_chunks(
    session: Session,
    id_column: Any,
    where: Iterable[Any],
    size: int | None = None,
) -> Iterator[list[Any]]:
    """The ids of the rows matching ``where``, in ascending chunks of ``size`` (keyset paging,
    so a million rows never sit in memory); a heartbeat after each chunk."""
    size = size or SWEEP_CHUNK_ROWS
    conditions = list(where)
    last: Any = None
    done = 0
    while True:
        statement = select(id_column).where(*conditions).order_by(id_column).limit(size)
        if last is not None:
            statement = statement.where(id_column > last)
        ids = list(session.scalars(statement))
        if not ids:
            return
        yield ids
        done += len(ids)
        heartbeat({"swept_rows": done})
        if len(ids) < size:
            return
        last = ids[-1]


def erase_cutoffs(
    connector: str, rules: Iterable[EraseRule], categories: Iterable[str]
) -> dict[str, datetime]:
    """The widest cutoff per category; ``before=None`` (all records) becomes the end of time.
    A rule confined to some countries is refused: this connector keeps no country."""
    known = set(categories)
    cutoffs: dict[str, datetime] = {}
    for rule in rules:
        before = _checked_cutoff(connector, rule, known)
        if rule.countries_ended is not None:
            raise ConnectorInputError(
                f"{connector} keeps no country: the rule for {rule.category} cannot be "
                "confined to countries_ended"
            )
        cutoffs[rule.category] = max(before, cutoffs.get(rule.category, before))
    return cutoffs


def country_conditions(
    connector: str,
    rules: Iterable[EraseRule],
    categories: Iterable[str],
    dated: Any,
    country: Any,
) -> dict[str, ColumnElement[bool]]:
    """Per category, the records its rules reach: dated before the cutoff and, for a rule
    confined to countries, ended in one of them. The most specific rule governs: a rule not
    confined to countries reaches only the countries no rule of its category names (so a
    sweep can say "6 months, but 2 years in Italy")."""
    known = set(categories)
    rules = list(rules)
    named: dict[str, set[str]] = {}
    for rule in rules:
        for code in rule.countries_ended or ():
            named.setdefault(rule.category, set()).add(code.upper())
    reached: dict[str, list[ColumnElement[bool]]] = {}
    for rule in rules:
        condition = dated < _checked_cutoff(connector, rule, known)
        if rule.countries_ended is not None:
            countries = [code.upper() for code in rule.countries_ended]
            condition = and_(condition, country.in_(countries))
        elif rule.category in named:
            condition = and_(condition, country.not_in(sorted(named[rule.category])))
        reached.setdefault(rule.category, []).append(condition)
    return {category: or_(*conditions) for category, conditions in reached.items()}


def _checked_cutoff(connector: str, rule: EraseRule, known: set[str]) -> datetime:
    if rule.category not in known:
        raise ConnectorInputError(f"{connector} holds no category named {rule.category!r}")
    before = rule.before if rule.before is not None else END_OF_TIME
    if before.tzinfo is None:
        raise ConnectorInputError(f"erase rule for {rule.category} needs a timezone")
    return before
