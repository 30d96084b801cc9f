"""The embedded stack for the orchestrator benchmarks: free ports, a temporary data folder,
the real worker, seeded stores, the requests, and what the machine and processes look like."""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cli.demo import seed_stores  # noqa: E402
from connectors.seeds.demo import DemoFacts  # noqa: E402
from connectors.seeds.population import EndUser, make_population  # noqa: E402
from dsr.models import Right, RightsRequest, parse_request  # noqa: E402
from dsr.settings import Settings  # noqa: E402
from services import stack  # noqa: E402
from services.embedded import worker_command  # noqa: E402

PEOPLE = 300
CUSTOMERS = 6
CORRECTIONS = [{"field": "name", "value": "Corrected Name"}]


@dataclass(frozen=True)
class Stack:
    settings: Settings
    facts: DemoFacts


@contextmanager
def running_stack(keep: bool = False) -> Iterator[Stack]:
    """The embedded stack with the real worker on free ports in a temp folder, seeded."""
    folder = Path(tempfile.mkdtemp(prefix="bench-orchestrator-"))
    settings = stack.settings_on_free_ports(folder)
    try:
        stack.up(settings, worker_command())
        yield Stack(settings, seed_stores(settings, people=PEOPLE, customers=CUSTOMERS))
    finally:
        stack.down(settings)
        if keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


# --- the requests --------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """One end user as held by one customer: each erasure needs a fresh one."""

    user: EndUser
    customer: str


def subjects() -> Iterator[Subject]:
    """Every (end user, customer holding them) pair of the seeded population, demo user last."""
    users = make_population(PEOPLE, CUSTOMERS).end_users
    for user in (*users[1:], users[0]):
        for customer in user.customers:
            yield Subject(user, customer)


def controller_request(
    request_id: str, subject: Subject, rights: list[Right] | None = None
) -> RightsRequest:
    """A customer's instruction through the API (verified by its API credentials) naming a
    phone number, an email address and a WhatsApp id (if the end user has one): it reaches
    every end-user connector."""
    rights = rights or [Right.ERASURE]
    user = subject.user
    whatsapp = user.channel_ids.get("whatsapp")
    data: dict[str, Any] = {
        "request_id": request_id,
        "rights": [r.value for r in rights],
        "identities": [
            {"type": "phone", "value": user.phone},
            {"type": "email", "value": user.email},
            *([{"type": "channel_id", "value": whatsapp}] if whatsapp else []),
        ],
        "jurisdiction": "EU",
        "channel": "api",
        "requester": {
            "kind": "controller",
            "email": "privacy@customer.example.com",
            "customer_account": subject.customer,
        },
        "received_at": datetime.now(UTC).isoformat(),
    }
    if Right.RECTIFICATION in rights:
        data["corrections"] = CORRECTIONS
    return parse_request(data)


def panel_request(request_id: str, account_id: str, email: str, right: Right) -> RightsRequest:
    """An account holder through the privacy panel, logged in a minute ago (verified by the
    login): it reaches the group's own connectors."""
    now = datetime.now(UTC)
    data: dict[str, Any] = {
        "request_id": request_id,
        "rights": [right.value],
        "identities": [
            {"type": "account_id", "value": account_id},
            {"type": "email", "value": email},
        ],
        "jurisdiction": "EU",
        "channel": "privacy_panel",
        "requester": {"kind": "subject", "email": email},
        "received_at": now.isoformat(),
        "last_login_at": (now - timedelta(minutes=1)).isoformat(),
    }
    if right is Right.RECTIFICATION:
        data["corrections"] = CORRECTIONS
    return parse_request(data)


def waiting_request(request_id: str, number: int) -> RightsRequest:
    """An emailed access request: a code goes to the address, and nobody ever submits it."""
    return parse_request(
        {
            "request_id": request_id,
            "rights": ["access"],
            "identities": [{"type": "email", "value": f"open.{number}@example.org"}],
            "jurisdiction": "EU",
            "channel": "email",
            "requester": {"kind": "subject", "email": f"open.{number}@example.org"},
            "received_at": datetime.now(UTC).isoformat(),
        }
    )


# --- processes and the machine -------------------------------------------------------------


def service_pid(settings: Settings, name: str) -> int:
    return int((settings.data_dir / "run" / f"{name}.pid").read_text().strip())


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` plus its descendants, in KiB."""
    total = 0
    for member in [pid, *_descendants(pid)]:
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def cpu_seconds(pid: int, descendants: bool = True) -> float:
    """User plus system CPU time of ``pid`` (and its descendants) so far, in seconds."""
    total = 0
    for member in [pid, *(_descendants(pid) if descendants else [])]:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return [d for child in children for d in (child, *_descendants(child))]


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 4),
        "p95": round(p95, 4),
        "min": round(ordered[0], 4),
        "max": round(ordered[-1], 4),
    }
