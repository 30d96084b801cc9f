"""Confirming a policy rule or text: an authenticated lawyer's or administrator's action in the
officer service (role from ``roles.yaml``), recorded in the ledger with the fingerprint of the
text confirmed, then written into the policy file (``dsr.rules``). A worker refuses a file
claiming a confirmation the ledger does not hold (``check_confirmations``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, StringConstraints
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from dsr import ledger, rules
from dsr.assertions import Principal
from dsr.settings import Settings
from services.officer_actions import Action, ActionRefused, Context

RULES = "policy-rules"  # the target of rule actions
CONFIRMED = "rule_confirmed"  # the ledger entry's kind


class RuleConfirmation(BaseModel):
    model_config = {"extra": "forbid"}
    file: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}\.yaml$")]
    address: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,200}$")]


class UnrecordedConfirmation(Exception):
    """A policy file says confirmed where the ledger holds no such confirmation."""


async def confirm_rule(ctx: Context, principal: Principal, ask: RuleConfirmation) -> Any:
    try:
        entry = await asyncio.to_thread(record_confirmation, ctx.settings, ctx.engine,
                                        principal, ask)
    except rules.RuleError as error:
        raise ActionRefused(str(error), 404 if isinstance(error, rules.UnknownRule) else 409
                            ) from None
    return {"file": entry.file, "address": entry.address, "confirmed_by": entry.confirmed_by,
            "confirmed_on": str(entry.confirmed_on), "fingerprint": entry.fingerprint}


def record_confirmation(settings: Settings, engine: Engine, principal: Principal,
             ask: RuleConfirmation) -> rules.RuleEntry:
    """In the ledger first, then in the file, inside the ledger's transaction: a file that
    cannot be written leaves no ledger entry. (Should the commit then fail, the file claims a
    confirmation the ledger lacks, and workers refuse it: set it back to draft.)"""
    now = datetime.now(UTC)
    entry = rules.find(settings.policy_dir, ask.file, ask.address)
    with Session(engine) as session, session.begin():
        ledger.append(session, CONFIRMED, principal.principal_id, now, None,
                      {"file": entry.file, "address": entry.address, "source": entry.source,
                       "fingerprint": entry.fingerprint}, ledger.ledger_key(settings.secret))
        return rules.confirm(settings.policy_dir, ask.file, ask.address,
                             principal.principal_id, now.date())


def recorded(engine: Engine) -> set[tuple[str, str, str]]:
    """(file, address, fingerprint) of every confirmation in the ledger."""
    with Session(engine) as session:
        details = session.scalars(
            select(ledger.LedgerEntry.detail).where(ledger.LedgerEntry.kind == CONFIRMED))
        return {(d["file"], d["address"], d["fingerprint"]) for d in details}


def check_confirmations(settings: Settings, engine: Engine) -> None:
    """Refuse policy files that claim confirmations the ledger does not hold."""
    missing = rules.unrecorded(settings.policy_dir, recorded(engine))
    if missing:
        named = "; ".join(f"{e.file} {e.address}" for e in missing)
        raise UnrecordedConfirmation(
            f"confirmed in the file but not in the ledger (edited by hand, or changed since it "
            f"was confirmed): {named}. Set it back to status: draft and confirm it with "
            "`starter.py rules confirm FILE ADDRESS` as a lawyer or administrator")


ACTIONS: dict[str, Action] = {
    "confirm_rule": Action(RuleConfirmation, lambda _: RULES, confirm_rule),
}
