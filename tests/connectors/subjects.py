"""The people the connector tests act on, picked from the seeded rows, and the independent SQL
each picker (and its connector's tests) finds their records with."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.seeds.demo import DemoFacts
from connectors.seeds.population import EndUser, Population
from dsr.models import Identity, IdentityType
from dsr.serverkeys import ServerKeys
from tests.connectors.helpers import (
    ACCOUNT_ID,
    CHANNEL,
    CUTOFF,
    EMAIL,
    PHONE,
    POPULATION,
    SECRET,
    Row,
    Subject,
    every_identity,
    ids,
    newer,
    older,
    phone_only,
    query,
    rows,
    utc,
)

# --- voice, inbox, flow builder -----------------------------------------------------------


def voice_calls(database: Path, user: EndUser, customer: str, other: bool = False) -> list[Row]:
    operator = "!=" if other else "="
    return rows(
        database,
        f"SELECT * FROM calls WHERE customer_account {operator} ? AND end_user_phone = ? "
        "ORDER BY id",
        customer,
        user.phone,
    )


def _good_voice_subject(database: Path, user: EndUser) -> bool:
    mine = voice_calls(database, user, user.customers[0])
    old = older(mine, "started_at")
    return (
        any(r["recording_ref"] for r in old)
        and any(r["cell_id"] for r in old)
        and bool(newer(mine, "started_at"))
        and any(r["recording_ref"] for r in newer(mine, "started_at"))
    )


INBOX_MATCH = "(contact_phone = ? OR contact_email = ? OR contact_channel_id IN (?, ?, ?))"


def inbox_conversations(
    database: Path, user: EndUser, customer: str, other: bool = False
) -> list[Row]:
    operator = "!=" if other else "="
    return rows(
        database,
        f"SELECT * FROM conversations WHERE customer_account {operator} ? AND {INBOX_MATCH} "
        "ORDER BY id",
        customer,
        user.phone,
        user.email,
        *user.channel_ids.values(),
    )


def inbox_messages(
    database: Path, conversations: list[Row], internal: bool | None = None
) -> list[Row]:
    kind = "" if internal is None else f" AND internal = {int(internal)}"
    return rows(
        database,
        f"SELECT * FROM messages WHERE conversation_id IN ({ids(conversations)}){kind} ORDER BY id",
    )


def _good_inbox_subject(database: Path, user: EndUser) -> bool:
    mine = inbox_conversations(database, user, user.customers[0])
    old, new = older(mine, "opened_at"), newer(mine, "opened_at")
    return (
        bool(old and new)
        and bool(inbox_messages(database, old, internal=True))
        and any(r["contact_email"] for r in mine)
        and any(r["contact_phone"] for r in mine)
        and any(r["contact_name"] for r in mine)
    )


FLOW_MATCH = "(contact_phone = ? OR contact_email = ? OR contact_channel_id IN (?, ?, ?))"


def flow_invocations(
    database: Path, user: EndUser, customer: str, other: bool = False
) -> list[Row]:
    operator = "!=" if other else "="
    return rows(
        database,
        f"SELECT * FROM invocations WHERE customer_account {operator} ? AND {FLOW_MATCH} "
        "ORDER BY id",
        customer,
        user.phone,
        user.email,
        *user.channel_ids.values(),
    )


def _good_flow_subject(database: Path, user: EndUser) -> bool:
    mine = flow_invocations(database, user, user.customers[0])
    return (
        bool(older(mine, "invoked_at") and newer(mine, "invoked_at"))
        and any(r["contact_email"] for r in mine)
        and any(r["contact_phone"] for r in mine)
    )


def _shared_user(good: Callable[[EndUser], bool]) -> EndUser:
    """The first end user held by two or more customers who is ``good`` at the first."""
    return next(u for u in POPULATION.end_users if len(u.customers) >= 2 and good(u))


# --- conversations and CDP ----------------------------------------------------------------


def chat_identities(user: EndUser) -> list[Identity]:
    """Phone (finds WhatsApp and Viber) and the Line and Messenger channel identities."""
    return [
        Identity(type=IdentityType.PHONE, value=user.phone),
        Identity(type=IdentityType.CHANNEL_ID, value=user.channel_ids["line"]),
        Identity(type=IdentityType.CHANNEL_ID, value=user.channel_ids["messenger"]),
    ]


def chat_threads_sql(user: EndUser, customer: str, other: bool = False) -> tuple[Any, ...]:
    """The subject's threads, found independently of the connector: by the phone column or
    the named channel identities."""
    match = "!=" if other else "="
    return (
        f"SELECT * FROM threads WHERE customer_account {match} ? AND anonymised_at IS NULL "
        "AND (phone = ? OR channel_user IN (?, ?)) ORDER BY id",
        customer,
        user.phone,
        user.channel_ids["line"],
        user.channel_ids["messenger"],
    )


def thread_end(thread: Row) -> datetime:
    return utc(thread["last_message_at"])


def profile_sql(user: EndUser, customer: str, other: bool = False) -> tuple[Any, ...]:
    match = "!=" if other else "="
    return (
        f"SELECT * FROM profiles WHERE customer_account {match} ? AND lower(email) = ? ORDER BY id",
        customer,
        user.email.lower(),
    )


def events_sql(user: EndUser, customer: str, other: bool = False) -> tuple[Any, ...]:
    match = "!=" if other else "="
    return (
        "SELECT events.* FROM events JOIN profiles ON profiles.id = events.profile_id "
        f"WHERE profiles.customer_account {match} ? AND lower(profiles.email) = ? "
        "ORDER BY events.id",
        customer,
        user.email.lower(),
    )


def _chat_subject(database: Path) -> tuple[EndUser, str]:
    """An end user held by several customers whose threads at one of them end on both sides
    of the cutoff, with a thread running across it."""
    for user in POPULATION.end_users:
        if len(user.customers) < 2:
            continue
        for customer in user.customers:
            threads = rows(database, *chat_threads_sql(user, customer))
            ends = [utc(t["last_message_at"]) for t in threads]
            across = [t for t in threads if utc(t["started_at"]) < CUTOFF <= thread_end(t)]
            if any(end < CUTOFF for end in ends) and across:
                return user, customer
    raise AssertionError("the seed must hold an end user with threads on both sides")


def _profile_subject(database: Path) -> tuple[EndUser, str]:
    for user in POPULATION.end_users:
        if len(user.customers) < 2:
            continue
        for customer in user.customers:
            profile = rows(database, *profile_sql(user, customer))
            if not profile or utc(profile[0]["updated_at"]) < CUTOFF:
                continue
            events = rows(database, *events_sql(user, customer))
            dates = [utc(e["occurred_at"]) for e in events]
            if min(dates) < CUTOFF <= max(dates):
                return user, customer
    raise AssertionError("the seed must hold a profile with events on both sides")


# --- email, video, widget, push -----------------------------------------------------------


def _pick(
    holdings: dict[str, dict[str, list[datetime]]],
    kind: IdentityType,
    also: Callable[[str, str], bool] = lambda value, customer: True,
) -> Subject:
    """The first identity (in order) held by two or more customers, where one customer's
    records fall on both sides of the cutoff (and meet ``also``): that customer is the
    controller."""
    for value in sorted(holdings):
        customers = holdings[value]
        controller = next(
            (
                c
                for c in sorted(customers)
                if min(customers[c]) < CUTOFF <= max(customers[c]) and also(value, c)
            ),
            None,
        )
        if len(customers) >= 2 and controller is not None:
            others = tuple(sorted(set(customers) - {controller}))
            return Subject(((kind, value),), controller, others)
    raise AssertionError("the seed must give some end user records at two customers")


def _group(
    found: list[dict[str, Any]], key: str, date: str
) -> dict[str, dict[str, list[datetime]]]:
    grouped: dict[str, dict[str, list[datetime]]] = defaultdict(lambda: defaultdict(list))
    for row in found:
        grouped[row[key]][row["customer_account"]].append(utc(row[date]))
    return grouped


def _email_subject(database: Path) -> Subject:
    """An address with a lapsed entry (all activity before the cutoff) and an active one."""
    found = query(
        database,
        "SELECT r.customer_account, lower(r.email) AS email, MAX(r.created_at,"
        " COALESCE((SELECT MAX(sent_at) FROM sends WHERE recipient_id = r.id), ''),"
        " COALESCE((SELECT MAX(occurred_at) FROM events WHERE recipient_id = r.id), ''))"
        " AS latest FROM recipients r",
    )
    return _pick(_group(found, "email", "latest"), EMAIL)


def _video_subject(database: Path) -> Subject:
    found = query(
        database,
        "SELECT v.customer_account, lower(v.email) AS email, m.scheduled_at"
        " FROM visitors v JOIN meetings m ON m.id = v.meeting_id",
    )
    subject = _pick(_group(found, "email", "scheduled_at"), EMAIL)
    phones = query(
        database,
        "SELECT DISTINCT phone FROM visitors WHERE lower(email) = ? AND phone IS NOT NULL",
        subject.value(EMAIL),
    )
    return subject.adding((PHONE, phones[0]["phone"]))


def _widget_subject(database: Path, population: Population) -> Subject:
    """A person with sessions on both sides of the cutoff, some of them without an email
    address (found by phone number or channel id only)."""
    person: dict[str, str] = {}
    for user in population.end_users:
        person |= dict.fromkeys([user.email, user.phone, *user.channel_ids.values()], user.email)
    found = [
        row | {"person": person[row["email"] or row["phone"] or row["channel_id"]]}
        for row in query(database, "SELECT * FROM widget_sessions")
    ]
    without_email = {(row["person"], row["customer_account"]) for row in found if not row["email"]}
    subject = _pick(
        _group(found, "person", "started_at"),
        EMAIL,
        lambda value, customer: (value, customer) in without_email,
    )
    user = next(u for u in population.end_users if u.email == subject.value(EMAIL))
    channels = tuple((CHANNEL, value) for value in sorted(user.channel_ids.values()))
    return subject.adding((PHONE, user.phone), *channels)


def _push_subject(database: Path) -> Subject:
    found = query(
        database, "SELECT customer_account, user_id, connected_at FROM channel_connections"
    )
    by_email = {k: v for k, v in _group(found, "user_id", "connected_at").items() if "@" in k}
    return _pick(by_email, EMAIL)


def _push_own_id_subject(database: Path) -> Subject:
    found = query(
        database, "SELECT customer_account, user_id, connected_at FROM channel_connections"
    )
    own = {k: v for k, v in _group(found, "user_id", "connected_at").items() if "@" not in k}
    value, customers = min(own.items())
    return Subject(((CHANNEL, f"pusher:{value}"),), next(iter(customers)), ())


# --- every connector ----------------------------------------------------------------------


@dataclass(frozen=True)
class Picks:
    """The end users some connectors' own tests act on, each held by two or more customers."""

    voice: EndUser
    inbox: EndUser
    flow: EndUser
    chat_user: EndUser  # has threads ending before and after CUTOFF at chat_customer
    chat_customer: str
    profile_user: EndUser  # a profile updated after CUTOFF with events on both sides
    profile_customer: str


def marketing_person() -> EndUser:
    return POPULATION.end_users[0]  # the seed gives them proof on both sides of five years


def person_hash(email: str | None = None) -> str:
    """The keyed hash marketing keeps consent proof and suppressions under."""
    normalised = Identity(type=IdentityType.EMAIL, value=email or marketing_person().email)
    return ServerKeys(SECRET).identities.tag(normalised.normalised)


def pick(databases: Path, facts: DemoFacts) -> tuple[Picks, dict[str, Subject]]:
    """The picks, and for each connector (by name) the subject its contract tests act on."""
    chat_user, chat_customer = _chat_subject(databases / "conversations.db")
    profile_user, profile_customer = _profile_subject(databases / "cdp.db")
    picks = Picks(
        voice=_shared_user(lambda user: _good_voice_subject(databases / "voice.db", user)),
        inbox=_shared_user(lambda user: _good_inbox_subject(databases / "inbox.db", user)),
        flow=_shared_user(lambda user: _good_flow_subject(databases / "flow_builder.db", user)),
        chat_user=chat_user,
        chat_customer=chat_customer,
        profile_user=profile_user,
        profile_customer=profile_customer,
    )

    def held(user: EndUser, identities: list[Identity], customer: str | None = None) -> Subject:
        controller = customer or user.customers[0]
        others = tuple(c for c in user.customers if c != controller)
        return Subject(tuple((i.type, i.value) for i in identities), controller, others)

    subjects = {
        "sms": Subject(
            ((PHONE, facts.end_user_phone),),
            facts.controller_account_id,
            tuple(facts.end_user_other_customers),
        ),
        # The group's own data: the account holder names their account and email address.
        "customer_account": Subject(
            ((ACCOUNT_ID, facts.account_holder_account_id),
             (EMAIL, facts.account_holder_email.upper())),
            facts.account_holder_account_id,
            (),
        ),
        "voice": held(picks.voice, phone_only(picks.voice)),
        "numbers": held(picks.voice, every_identity(picks.voice)),
        "inbox": held(picks.inbox, every_identity(picks.inbox)),
        "flow_builder": held(picks.flow, every_identity(picks.flow)),
        "conversations": held(chat_user, chat_identities(chat_user), chat_customer),
        "cdp": held(
            profile_user,
            [Identity(type=EMAIL, value=profile_user.email.upper())],
            profile_customer,
        ),
        # The group's own data: the customer in the scope plays no part.
        "marketing": Subject(((EMAIL, marketing_person().email.upper()),), "CUST-0001", ()),
        "email": _email_subject(databases / "email.db"),
        "video": _video_subject(databases / "video.db"),
        "widget": _widget_subject(databases / "widget.db", POPULATION),
        "push": _push_subject(databases / "push.db"),
        "push_own_id": _push_own_id_subject(databases / "push.db"),
    }
    return picks, subjects
