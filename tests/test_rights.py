"""The rights table (``dsr.rights``): every right has its row, each row's operation is one the
connector contract knows and some connector serves, its verb one the answer has words for,
and its verification need the one ``dsr.verification`` enforces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dsr import rights
from dsr.connector_contract import Operation
from dsr.connector_registry import load_registry
from dsr.emails import Action, load_words
from dsr.models import Right, parse_request
from dsr.settings import Settings
from dsr.verification import plan_verification

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
# The order connectors act in, as running requests recorded it (erasure last).
RECORDED_ORDER = (
    Operation.ACCESS, Operation.RECTIFY, Operation.RESTRICT, Operation.OBJECT,
    Operation.WITHDRAW_CONSENT, Operation.MARKETING_OPT_OUT, Operation.ERASE,
)
NOT_A_RIGHT = {Operation.DISCOVER, Operation.LOCATE, Operation.SWEEP}


def test_every_right_has_one_row() -> None:
    listed = [row.right for row in rights.RIGHTS]
    assert sorted(listed) == sorted(Right)
    assert len(listed) == len(set(listed))


def test_each_operation_is_the_contracts_and_a_connector_serves_it() -> None:
    shipped = Settings.model_fields["connector_registry"].default
    served = {op for entry in load_registry(shipped).connectors for op in entry.operations}
    for row in rights.RIGHTS:
        if row.operation is None:
            continue
        assert row.operation in Operation.__members__.values(), row
        assert row.operation not in NOT_A_RIGHT, row
        assert row.operation in served, f"no connector serves {row.operation} ({row.right})"


def test_each_verb_is_an_action_the_answer_has_words_for() -> None:
    words = load_words()
    for row in rights.RIGHTS:
        assert (row.operation is None) == (row.verb is None), row
        assert row.right in words.rights
        if row.verb is not None:
            assert isinstance(row.verb, Action) and row.verb in words.actions
    for operation, verb in rights.VERBS.items():  # rights sharing an operation share its verb
        assert {row.verb for row in rights.RIGHTS if row.operation is operation} == {verb}


def test_connectors_act_in_the_order_running_requests_recorded() -> None:
    assert rights.OPERATION_ORDER == RECORDED_ORDER
    assert rights.RIGHTS[-1].right is Right.ERASURE
    assert rights.operations([Right.ERASURE, Right.ACCESS, Right.PORTABILITY]) == [
        Operation.ACCESS, Operation.ERASE]
    assert rights.operations([Right.OPT_OUT_SALE_SHARING, Right.LIMIT_SENSITIVE]) == []


def test_a_right_a_connector_acts_on_is_verified_first() -> None:
    for row in rights.RIGHTS:
        if row.operation is not None:
            assert row.needs_verification, row


@pytest.mark.parametrize("row", rights.RIGHTS, ids=[row.right.value for row in rights.RIGHTS])
def test_verification_plans_what_the_table_says(row: rights.RightRow) -> None:
    request = parse_request({
        "request_id": "DSR-T-0001",
        "rights": [row.right.value],
        "identities": [{"type": "email", "value": "zora.quill@example.com"}],
        "jurisdiction": "EU",
        "channel": "email",
        "requester": {"kind": "subject", "email": "zora.quill@example.com"},
        "received_at": (NOW - timedelta(hours=1)).isoformat(),
        "corrections": ([{"field": "name", "value": "Zora Quill"}]
                        if row.right is Right.RECTIFICATION else []),
    }, now=NOW)
    assert bool(plan_verification(request, NOW, 15)) == row.needs_verification
    assert (row.right in rights.RIGHTS_NEEDING_VERIFICATION) == row.needs_verification
