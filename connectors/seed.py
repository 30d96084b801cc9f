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
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import insert
from sqlalchemy.orm import DeclarativeBase

from connectors.customer_account import CustomerAccountConnector
from connectors.customer_account_store import (
    Account,
    AccountBase,
    BillingProfile,
    Contact,
    Contract,
    Invoice,
)
from connectors.kit.store import Store
from connectors.population import make_population
from connectors.sms import Message, SmsBase, SmsConnector

SMS_HISTORY = timedelta(days=425)  # about 14 months
ACCOUNT_HISTORY_YEARS = 12
# The demo end user's messages for the controller customer, in days before now: five newer
# and five older than six months, none near the boundary.
DEMO_MESSAGE_DAYS = (12, 40, 75, 110, 150, 215, 260, 300, 350, 400)


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


@dataclass(frozen=True)
class Company:
    name: str
    domain: str
    sender_id: str
    kind: str
    country: str


COMPANIES = (
    Company(
        "Northwind Parcels B.V.", "northwind-parcels.example.com", "NORTHWIND", "delivery", "NL"
    ),
    Company("Kestrel Bank GmbH", "kestrel-bank.example.net", "KESTRELBANK", "bank", "DE"),
    Company("Harbourview Dental Ltd", "harbourview.example.org", "HVDENTAL", "clinic", "GB"),
    Company("Bluefin Air Inc.", "bluefin-air.example.com", "BLUEFINAIR", "travel", "US"),
    Company("Lotus Eats Pte. Ltd.", "lotus-eats.example.net", "LOTUSEATS", "food", "SG"),
    Company("Fjord & Pine Retail B.V.", "fjordpine.example.org", "FJORDPINE", "retail", "NL"),
    Company("Cinder Rides GmbH", "cinder-rides.example.com", "CINDER", "rides", "DE"),
    Company("Quayside Energy Ltd", "quayside-energy.example.net", "QUAYSIDE", "utility", "GB"),
)

OUTBOUND = {
    "delivery": (
        "Your parcel {ref} arrives today between {hour}:00 and {hour2}:00.",
        "We missed you! Parcel {ref} is at your pickup point until {day}.",
        "Parcel {ref} has been delivered. Rate your delivery: 1-5",
    ),
    "bank": (
        "Your Kestrel verification code is {code}. Never share this code.",
        "A card payment of EUR {amount} was declined. Call us if this wasn't you.",
        "Your new card ending {last4} is on its way.",
    ),
    "clinic": (
        "Reminder: your check-up is on {day} at {hour}:30. Reply C to confirm.",
        "Hi {first}, your hygienist appointment has moved to {day} at {hour}:00.",
    ),
    "travel": (
        "Flight BF{flight} to {city} is on time. Boarding from gate {gate} at {hour}:{minute}.",
        "Check-in is open for BF{flight}. Your booking reference is {ref}.",
        "BF{flight} is delayed by 45 minutes. We're sorry for the wait.",
    ),
    "food": (
        "Your order {ref} is being prepared and will arrive in about 25 minutes.",
        "Hi {first}, your rider is nearby with order {ref}.",
        "Weekend deal: 20% off with code LOTUS{code}. Reply STOP to opt out.",
    ),
    "retail": (
        "Thanks for your order {ref}! We'll text you when it ships.",
        "Sale starts {day}: up to 40% off. Reply STOP to unsubscribe.",
    ),
    "rides": (
        "Your driver is arriving in 3 minutes in a grey hatchback ({ref}).",
        "Your code to start the ride is {code}.",
    ),
    "utility": (
        "Your meter reading is due by {day}. Reply with the reading.",
        "Your monthly statement of GBP {amount} is ready in the app.",
    ),
}
INBOUND = ("C", "YES", "STOP", "Thanks!", "Can I move it to Friday?", "OK", "Where is my order?")

COUNTRY_WEIGHTS = {"NL": 30, "DE": 22, "GB": 18, "US": 14, "SG": 8, "FR": 4, "BR": 2, "AU": 2}
OPERATORS = {
    "NL": ("KPN", "Odido", "VodafoneZiggo"),
    "DE": ("Telekom", "Vodafone DE", "O2 DE"),
    "GB": ("EE", "Vodafone UK", "O2 UK", "Three"),
    "US": ("Verizon", "AT&T", "T-Mobile US"),
    "SG": ("Singtel", "StarHub", "M1"),
    "FR": ("Orange", "SFR", "Bouygues"),
    "BR": ("Vivo", "Claro"),
    "AU": ("Telstra", "Optus"),
}
MOBILE_COUNTRY_CODE = {
    "NL": 204, "DE": 262, "GB": 234, "US": 310, "SG": 525, "FR": 208, "BR": 724, "AU": 505,
}  # fmt: skip
CITIES = {
    "NL": ((52.370, 4.895), (51.924, 4.478), (52.091, 5.122)),
    "DE": ((52.520, 13.405), (48.137, 11.576), (53.551, 9.994)),
    "GB": ((51.507, -0.128), (53.481, -2.242), (55.953, -3.188)),
    "US": ((40.713, -74.006), (37.775, -122.419), (41.878, -87.630)),
    "SG": ((1.352, 103.820),),
    "FR": ((48.857, 2.352), (45.764, 4.836)),
    "BR": ((-23.551, -46.633),),
    "AU": ((-33.869, 151.209), (-37.814, 144.963)),
}
DESTINATIONS = ("Amsterdam", "Berlin", "London", "Singapore", "New York", "Lisbon")
FIRST_NAMES = (
    "Anna", "Bram", "Chloe", "Daan", "Elif", "Finn", "Greta", "Hamza", "Ines", "Jonas",
    "Kiri", "Lars", "Maya", "Noor", "Oskar", "Priya", "Quinn", "Ruben", "Sofia", "Tariq",
)  # fmt: skip
LAST_NAMES = (
    "de Vries", "Jansen", "Becker", "Schmidt", "Clarke", "Okafor", "Tan", "Lim", "Moreau",
    "Silva", "Novak", "Haddad", "Kowalski", "Andersen", "Rossi", "Nakamura",
)  # fmt: skip
JOB_TITLES = (
    "Head of Operations", "Data Protection Officer", "CTO", "Finance Manager",
    "Marketing Lead", "Customer Service Manager", "Developer",
)  # fmt: skip
# Well-known documentation example IBANs with their banks' BICs.
EXAMPLE_BANKS = (
    ("NL91ABNA0417164300", "ABNANL2A"),
    ("DE89370400440532013000", "COBADEFFXXX"),
    ("GB29NWBK60161331926819", "NWBKGB2L"),
)
# Every demo account contracts with the Dutch parent (privacy statement: MessageBird B.V.).
CONTRACTING_ENTITY = {"entity": "MessageBird B.V.", "country": "NL"}
CURRENCY = {"NL": "EUR", "DE": "EUR", "GB": "GBP", "US": "USD", "SG": "SGD"}


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

    accounts = _accounts(rng, companies, account_ids, now)
    phones = [EndUser(phone=user.phone, country=user.country, first_name=user.first_name)
              for user in make_population(people, customers, seed).end_users]
    messages = _messages(rng, phones, companies, account_ids, now)
    demo = _demo_messages(rng, phones[0], companies, account_ids, now)
    _refill(customer_account.store, AccountBase, accounts)
    _refill(sms.store, SmsBase, {Message: sorted(messages + demo, key=lambda m: m["sent_at"])})
    return _facts(accounts, phones[0], messages + demo, account_ids, now)


# --- customer accounts ---------------------------------------------------------------------


def _accounts(
    rng: random.Random, companies: tuple[Company, ...], account_ids: list[str], now: datetime
) -> dict[type[Any], list[dict[str, Any]]]:
    rows: dict[type[Any], list[dict[str, Any]]] = {
        Account: [],
        Contract: [],
        Contact: [],
        BillingProfile: [],
        Invoice: [],
    }
    for index, (company, account_id) in enumerate(zip(companies, account_ids, strict=True)):
        age_years = ACCOUNT_HISTORY_YEARS - index * 1.7 - rng.random() * 0.5
        created_at = now - timedelta(days=round(age_years * 365.25))
        contacts = _contacts(rng, company, account_id, created_at, now, index)
        rows[Account].append(
            {
                "account_id": account_id,
                "company_name": company.name,
                "registered_email": contacts[0]["email"],
                "created_at": created_at,
                "status": "active",
                "processing_restricted": False,
            }
        )
        rows[Contract].append(CONTRACTING_ENTITY | {"account_id": account_id})
        rows[Contact].extend(contacts)
        billing = _billing_profile(rng, company, account_id, created_at, now, index)
        rows[BillingProfile].append(billing)
        finance = contacts[-1]
        rows[Invoice].extend(_invoices(rng, company, account_id, created_at, now, billing, finance))
    return rows


def _contacts(
    rng: random.Random,
    company: Company,
    account_id: str,
    created_at: datetime,
    now: datetime,
    index: int,
) -> list[dict[str, Any]]:
    contacts: list[dict[str, Any]] = []
    for number in range(rng.randint(2, 5)):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        title = rng.choice(JOB_TITLES)
        local = f"{first}.{last}".lower().replace(" ", "")
        if any(contact["email"].startswith(f"{local}@") for contact in contacts):
            local = f"{local}.{number}"
        contacts.append(
            {
                "account_id": account_id,
                "name": f"{first} {last}",
                "email": f"{local}@{company.domain}",
                # 020 7946 0000-0999: the UK range reserved for drama.
                "phone": f"+442079460{index}{number}{rng.randint(0, 9)}",
                "job_title": title,
                "signature": f"{first} {last}\n{title}\n{company.name}",
                "created_at": created_at if number == 0 else _between(rng, created_at, now),
                "anonymised_at": None,
            }
        )
    return contacts


def _billing_profile(
    rng: random.Random,
    company: Company,
    account_id: str,
    created_at: datetime,
    now: datetime,
    index: int,
) -> dict[str, Any]:
    iban, bic = EXAMPLE_BANKS[index % len(EXAMPLE_BANKS)]
    return {
        "account_id": account_id,
        "billing_name": company.name,
        "company_address": f"{rng.randint(1, 250)} Example Street, {company.country}",
        "bank_iban": iban,
        "bank_bic": bic,
        "vat_number": f"{company.country}DEMO{index:05d}",
        "updated_at": _between(rng, created_at, now),
        "anonymised_at": None,
    }


def _invoices(
    rng: random.Random,
    company: Company,
    account_id: str,
    created_at: datetime,
    now: datetime,
    billing: dict[str, Any],
    finance: dict[str, Any],
) -> list[dict[str, Any]]:
    invoices = []
    year, month = created_at.year, created_at.month
    while (year, month) < (now.year, now.month):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        invoices.append(
            {
                "account_id": account_id,
                "issued_at": datetime(year, month, 1, 6, 0, tzinfo=UTC),
                "amount_cents": rng.randint(5_000, 500_000),
                "currency": CURRENCY.get(company.country, "EUR"),
                "billing_name": company.name,
                "billing_email": finance["email"],
                "billing_address": billing["company_address"],
                "anonymised_at": None,
            }
        )
    return invoices


# --- SMS traffic ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EndUser:
    phone: str
    country: str
    first_name: str


def _messages(
    rng: random.Random,
    end_users: list[EndUser],
    companies: tuple[Company, ...],
    account_ids: list[str],
    now: datetime,
) -> list[dict[str, Any]]:
    rows = []
    for end_user in end_users[1:]:  # the first is the demo end user
        held_by = rng.sample(range(len(companies)), k=rng.choices((1, 2, 3), (55, 30, 15))[0])
        for index in held_by:
            for _ in range(rng.randint(2, 30)):
                sent_at = now - timedelta(seconds=rng.uniform(0, SMS_HISTORY.total_seconds()))
                rows.append(_message(rng, end_user, companies[index], account_ids[index], sent_at))
    return rows


def _demo_messages(
    rng: random.Random,
    end_user: EndUser,
    companies: tuple[Company, ...],
    account_ids: list[str],
    now: datetime,
) -> list[dict[str, Any]]:
    """The demo end user: messages for the controller (customer 1) on both sides of the
    six-month hold, and messages for customers 3 and 5 that must stay untouched."""
    rows = []
    for days in DEMO_MESSAGE_DAYS:
        sent_at = now - timedelta(days=days, hours=rng.uniform(0, 12))
        rows.append(_message(rng, end_user, companies[0], account_ids[0], sent_at))
    for index in (2, min(4, len(companies) - 1)):
        for _ in range(6):
            sent_at = now - timedelta(seconds=rng.uniform(0, SMS_HISTORY.total_seconds()))
            rows.append(_message(rng, end_user, companies[index], account_ids[index], sent_at))
    return rows


def _message(
    rng: random.Random, end_user: EndUser, company: Company, account_id: str, sent_at: datetime
) -> dict[str, Any]:
    inbound = rng.random() < 0.15
    country = end_user.country if rng.random() < 0.9 else rng.choice(list(COUNTRY_WEIGHTS))
    content = rng.choice(INBOUND) if inbound else _outbound_text(rng, company, end_user)
    stored_content = content if rng.random() < 0.9 else None
    return {
        "customer_account": account_id,
        "end_user_phone": end_user.phone,
        "direction": "inbound" if inbound else "outbound",
        "sender_id": company.sender_id,
        "content": stored_content,
        "sent_at": sent_at,
        "status": "received" if inbound else _status(rng),
        "operator": rng.choice(OPERATORS[country]),
        "route": f"{country.lower()}-{rng.choice(('direct', 'hub'))}-{rng.randint(1, 4):02d}",
        "segments": max(1, math.ceil(len(content) / 153)),
        "country_ended": country,
        **_location(rng, country),
        "anonymised_at": None,
    }


def _outbound_text(rng: random.Random, company: Company, end_user: EndUser) -> str:
    template = rng.choice(OUTBOUND[company.kind])
    hour = rng.randint(8, 18)
    return template.format(
        ref=f"{rng.choice('ABCDEFGHJK')}{rng.randint(100000, 999999)}",
        code=f"{rng.randint(0, 999999):06d}",
        hour=hour,
        hour2=hour + 2,
        minute=f"{rng.choice((0, 15, 30, 45)):02d}",
        day=rng.choice(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")),
        amount=f"{rng.uniform(5, 900):.2f}",
        last4=f"{rng.randint(0, 9999):04d}",
        first=end_user.first_name,
        flight=rng.randint(100, 999),
        city=rng.choice(DESTINATIONS),
        gate=f"{rng.choice('ABCDE')}{rng.randint(1, 40)}",
    )


def _status(rng: random.Random) -> str:
    return rng.choices(("delivered", "failed", "expired", "rejected"), (90, 5, 4, 1))[0]


def _location(rng: random.Random, country: str) -> dict[str, Any]:
    located = rng.random() < 0.35
    if not located:
        return {"cell_id": None, "latitude": None, "longitude": None}
    latitude, longitude = rng.choice(CITIES[country])
    return {
        "cell_id": f"{MOBILE_COUNTRY_CODE[country]}-{rng.randint(1, 20):02d}-"
        f"{rng.randint(1000, 9999)}-{rng.randint(10000, 99999)}",
        "latitude": round(latitude + rng.uniform(-0.05, 0.05), 5),
        "longitude": round(longitude + rng.uniform(-0.05, 0.05), 5),
    }


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


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))
