"""The fictional people every reference store is seeded with, shared so that one end user
appears in several products and at several customers, as in real life.

Numbers come only from ranges reserved for drama and examples (UK 07700 900xxx, North
American 555-01xx); email addresses only from example domains.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

FIRST_NAMES = (
    "Anna", "Bram", "Chloe", "Daan", "Elif", "Finn", "Greta", "Hamza", "Ines", "Jonas",
    "Kiri", "Lars", "Maya", "Noor", "Oskar", "Priya", "Quinn", "Ruben", "Sofia", "Tariq",
)  # fmt: skip
LAST_NAMES = (
    "de Vries", "Jansen", "Becker", "Schmidt", "Clarke", "Okafor", "Tan", "Lim", "Moreau",
    "Silva", "Novak", "Haddad", "Kowalski", "Andersen", "Rossi", "Nakamura",
)  # fmt: skip
COUNTRY_WEIGHTS = {"NL": 30, "DE": 22, "GB": 18, "US": 14, "SG": 8, "FR": 4, "BR": 2, "AU": 2}
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")


@dataclass(frozen=True)
class EndUser:
    first_name: str
    last_name: str
    phone: str
    email: str
    country: str
    customers: tuple[str, ...]  # the customer accounts holding this person's data
    # channel -> identity value as a request names it, e.g. "whatsapp:447700900123"
    channel_ids: dict[str, str] = field(default_factory=dict)
    ip: str = "192.0.2.1"  # documentation range (RFC 5737)

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass(frozen=True)
class Population:
    customers: tuple[str, ...]
    end_users: tuple[EndUser, ...]

    def of_customer(self, account_id: str) -> list[EndUser]:
        return [user for user in self.end_users if account_id in user.customers]


def make_population(people: int = 300, customers: int = 6, seed: int = 42) -> Population:
    """``people`` end users spread over customers ``CUST-0001`` ... (the customer-account
    store's ids); about half of them are held by two or three customers."""
    rng = random.Random(seed)
    accounts = tuple(f"CUST-{number:04d}" for number in range(1, customers + 1))
    phones = _phones(rng, people)
    users = [_end_user(rng, index, phone, accounts) for index, phone in enumerate(phones)]
    users[0] = replace(users[0], customers=demo_holders(accounts))
    return Population(customers=accounts, end_users=tuple(users))


def demo_holders(accounts: tuple[str, ...]) -> tuple[str, ...]:
    """The demo end user is held by customers 1 (the controller of the demo), 3 and 5."""
    return tuple(accounts[index] for index in sorted({0, 2, min(4, len(accounts) - 1)}))


def _phones(rng: random.Random, people: int) -> list[tuple[str, str]]:
    uk = [f"+447700900{n:03d}" for n in range(1000)]
    nanp = [f"+1{area}55501{n:02d}" for area in (202, 212, 312, 415, 617, 206) for n in range(100)]
    countries = rng.choices(list(COUNTRY_WEIGHTS), weights=list(COUNTRY_WEIGHTS.values()), k=people)
    american = sum(country in ("US", "BR") for country in countries)
    if american > len(nanp) or people - american > len(uk):
        raise ValueError("too many people for the fictional number ranges")
    us_numbers = iter(rng.sample(nanp, american))
    uk_numbers = iter(rng.sample(uk, people - american))
    return [(next(us_numbers if c in ("US", "BR") else uk_numbers), c) for c in countries]


def _end_user(
    rng: random.Random, index: int, phone: tuple[str, str], accounts: tuple[str, ...]
) -> EndUser:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    held_by = rng.sample(accounts, k=min(len(accounts), rng.choices((1, 2, 3), (55, 30, 15))[0]))
    local = f"{first}.{last}".lower().replace(" ", "") + f".{index}"
    return EndUser(
        first_name=first,
        last_name=last,
        phone=phone[0],
        email=f"{local}@{rng.choice(EMAIL_DOMAINS)}",
        country=phone[1],
        customers=tuple(sorted(held_by)),
        channel_ids={
            "whatsapp": f"whatsapp:{phone[0].lstrip('+')}",
            "messenger": f"messenger:{rng.randrange(10**15, 10**16)}",
            "line": f"line:U{rng.getrandbits(128):032x}",
        },
        ip=f"192.0.2.{rng.randint(1, 254)}",
    )
