"""Demo data for the customer account store: the fictional companies that are the demo's
customers, with their contacts, billing profiles and invoices."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.customer_account_store import (
    Account,
    BillingProfile,
    Contact,
    Contract,
    Invoice,
)

ACCOUNT_HISTORY_YEARS = 12


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


def customer_accounts(
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


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))
