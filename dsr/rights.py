"""The rights a person may ask for, in one table: what a connector is asked to do for each,
whether the requester must be verified first, and what the answer says each connector did.

The rows' order is the order in which a connector acts on a request's rights (and the order
the bench asks them in): erasure last, so that what the other rights act on (an export, a
correction, a restriction) is still there. Running requests recorded that order: a row moved
among those with an operation changes the calls a replayed request makes.

A new right is a row here, its words in ``dsr/templates/words.yaml`` (and ``dsr.emails.Action``
with them, for a new verb) and, where the texts change, the templates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dsr.connector_contract import Operation
from dsr.emails import Action
from dsr.models import Right


@dataclass(frozen=True)
class RightRow:
    right: Right
    # What each connector holding the person's data does; None: no connector acts (the right
    # is recorded and answered, and binds future processing).
    operation: Operation | None
    # The right discloses or changes data: each identity is verified first (dsr.verification).
    needs_verification: bool
    # What the answer says a connector did (dsr.emails.Action); None where no connector acts.
    verb: Action | None


RIGHTS: tuple[RightRow, ...] = (
    RightRow(Right.ACCESS, Operation.ACCESS, True, Action.EXPORTED),
    RightRow(Right.PORTABILITY, Operation.ACCESS, True, Action.EXPORTED),
    RightRow(Right.RECTIFICATION, Operation.RECTIFY, True, Action.RECTIFIED),
    RightRow(Right.RESTRICTION, Operation.RESTRICT, True, Action.RESTRICTED),
    RightRow(Right.OBJECTION, Operation.OBJECT, True, Action.OBJECTION_RECORDED),
    RightRow(Right.WITHDRAW_CONSENT, Operation.WITHDRAW_CONSENT, True, Action.CONSENT_WITHDRAWN),
    RightRow(Right.MARKETING_OPT_OUT, Operation.MARKETING_OPT_OUT, True, Action.UNSUBSCRIBED),
    RightRow(Right.OPT_OUT_SALE_SHARING, None, False, None),
    RightRow(Right.LIMIT_SENSITIVE, None, False, None),
    RightRow(Right.ERASURE, Operation.ERASE, True, Action.ERASED),
)
ROWS: dict[Right, RightRow] = {row.right: row for row in RIGHTS}

# Rights that disclose or delete data, and so need each identity verified first.
RIGHTS_NEEDING_VERIFICATION = frozenset(row.right for row in RIGHTS if row.needs_verification)
# The order in which a connector acts: each operation where its first right's row is.
OPERATION_ORDER: tuple[Operation, ...] = tuple(
    dict.fromkeys(row.operation for row in RIGHTS if row.operation is not None)
)
# What the answer says a connector did, by the operation it did.
VERBS: dict[Operation, Action] = {
    row.operation: row.verb for row in RIGHTS if row.operation is not None and row.verb is not None
}


def operations(rights: Iterable[Right]) -> list[Operation]:
    """What a connector is asked to do for these rights, in the order it does it."""
    wanted = {ROWS[right].operation for right in rights}
    return [operation for operation in OPERATION_ORDER if operation in wanted]


def needs_verification(rights: Iterable[Right]) -> bool:
    """Whether a request for these rights is verified before anything is disclosed or done."""
    return any(ROWS[right].needs_verification for right in rights)
