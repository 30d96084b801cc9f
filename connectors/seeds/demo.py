"""Deterministic demo data for the SMS and customer account stores.

Seeding **clears and refills** both stores (every table, the operation log and SMS
restrictions included), so seeding twice never duplicates and the same ``seed`` and ``now``
always give the same data. Point it only at demo and test stores.

Everything is fictional: companies and people are invented, email addresses use
``example.com``/``.org``/``.net``, and phone numbers come only from ranges reserved for drama
and examples (UK 07700 900xxx and 020 7946 0xxx, North American 555-01xx). That is why a Dutch
end user may have a UK number: ``country_ended`` says where each message ended.
"""

from __future__ import annotations

import calendar
import random
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import insert
from sqlalchemy.orm import DeclarativeBase

from connectors.customer_account import CustomerAccountConnector
from connectors.customer_account_store import Account, AccountBase
from connectors.kit.store import Store
from connectors.seeds.customer_account import COMPANIES, customer_accounts
from connectors.seeds.population import make_population
from connectors.seeds.sms import EndUser, demo_end_user_messages, end_user_messages
from connectors.sms import Message, SmsBase, SmsConnector


class DemoFacts(BaseModel):
    """What a demo needs to know about the seeded data."""

    now: datetime
    # An account holder asking for their own account data (privacy panel or email).
    account_holder_account_id: str
    account_holder_email: str
    # A customer acting as controller for one of its end users.
    controller_account_id: str
    controller_registered_email: str
    end_user_phone: str
    # The other customers holding messages of the same number (they must stay untouched).
    end_user_other_customers: list[str]
    six_months_before: datetime
    end_user_messages_older: int  # for the controller, sent before six_months_before
    end_user_messages_newer: int


def seed_stores(
    sms: SmsConnector,
    customer_account: CustomerAccountConnector,
    *,
    people: int = 300,
    customers: int = 6,
    now: datetime,
    seed: int = 42,
) -> DemoFacts:
    """Clear both stores and fill them with ``customers`` customer accounts and the SMS
    traffic of ``people`` end users over the last ~14 months before ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if customers < 3 or customers > len(COMPANIES):
        raise ValueError(f"customers must be between 3 and {len(COMPANIES)}")
    rng = random.Random(seed)
    now = now.astimezone(UTC)
    companies = COMPANIES[:customers]
    account_ids = [f"CUST-{number:04d}" for number in range(1, customers + 1)]

    accounts = customer_accounts(rng, companies, account_ids, now)
    phones = [EndUser(phone=user.phone, country=user.country, first_name=user.first_name)
              for user in make_population(people, customers, seed).end_users]
    messages = end_user_messages(rng, phones, companies, account_ids, now)
    demo = demo_end_user_messages(rng, phones[0], companies, account_ids, now)
    _refill(customer_account.store, AccountBase, accounts)
    _refill(sms.store, SmsBase, {Message: sorted(messages + demo, key=lambda m: m["sent_at"])})
    return _facts(accounts, phones[0], messages + demo, account_ids, now)


# --- writing and facts ---------------------------------------------------------------------


def _refill(
    store: Store, base: type[DeclarativeBase], rows: dict[type[Any], list[dict[str, Any]]]
) -> None:
    """Empty every table of the store, then insert ``rows``, in one transaction."""
    with store.writing() as session:
        for table in reversed(base.metadata.sorted_tables):
            session.execute(table.delete())
        for model, model_rows in rows.items():
            if model_rows:
                session.execute(insert(model), model_rows)


def _facts(
    accounts: dict[type[Any], list[dict[str, Any]]],
    end_user: EndUser,
    messages: list[dict[str, Any]],
    account_ids: list[str],
    now: datetime,
) -> DemoFacts:
    registered = {row["account_id"]: row["registered_email"] for row in accounts[Account]}
    controller, holder = account_ids[0], account_ids[1]
    boundary = six_months_before(now)
    mine = [m for m in messages if m["end_user_phone"] == end_user.phone]
    for_controller = [m for m in mine if m["customer_account"] == controller]
    return DemoFacts(
        now=now,
        account_holder_account_id=holder,
        account_holder_email=registered[holder],
        controller_account_id=controller,
        controller_registered_email=registered[controller],
        end_user_phone=end_user.phone,
        end_user_other_customers=sorted({m["customer_account"] for m in mine} - {controller}),
        six_months_before=boundary,
        end_user_messages_older=sum(1 for m in for_controller if m["sent_at"] < boundary),
        end_user_messages_newer=sum(1 for m in for_controller if m["sent_at"] >= boundary),
    )


def six_months_before(moment: datetime) -> datetime:
    """The same day six calendar months earlier (the month's last day where it is shorter)."""
    year, month = divmod(moment.year * 12 + moment.month - 1 - 6, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)
