"""The Numbers connector: the customer's own numbers are no end user's personal data, so
every operation finds nothing of a subject, and its sweep holds nothing."""

from __future__ import annotations

import pytest

from connectors.kit.errors import ConnectorInputError
from dsr.connector_contract import AccessInput, EraseInput, EraseRule, FlagInput, SweepInput
from tests.connectors.helpers import NOW, POPULATION, dump, every_identity, rows, scope
from tests.connectors.stores import Stores
from tests.connectors.subjects import voice_calls


def test_numbers_holds_nothing_of_the_subject_although_the_customer_owns_numbers(
    stores: Stores,
) -> None:
    user = stores.picks.voice
    database = stores.db("numbers")
    owned = rows(database, "SELECT * FROM numbers WHERE customer_account = ?", user.customers[0])
    assert {r["kind"] for r in owned} >= {"local", "short_code"}
    everyone = {u.phone for u in POPULATION.end_users} | {u.email for u in POPULATION.end_users}
    assert not everyone & {r["number"] for r in rows(database, "SELECT number FROM numbers")}
    assert rows(database, "SELECT * FROM numbers WHERE number = ?", user.phone) == []
    snapshot = dump(database)
    subject = scope("REQ-N001", *every_identity(user), customer=user.customers[0])

    discovery = stores.numbers.discover(subject)
    access = stores.numbers.access(AccessInput(scope=subject))
    erase = stores.numbers.erase(EraseInput(scope=subject, rules=[]))
    restrict = stores.numbers.restrict(FlagInput(scope=subject))

    assert discovery.holdings == [] and discovery.records == 0
    assert access.records == {} and access.blob_ref is None
    assert not list((stores.folder / "blobs").rglob("*.jsonl"))
    assert (erase.erased, erase.retained) == ({}, {}) and restrict.records == 0
    after = dump(database)
    assert after["numbers"] == snapshot["numbers"]
    voice_call = voice_calls(stores.db("voice"), user, user.customers[0])[0]
    assert voice_call["caller_id"] in {r["number"] for r in owned}  # voice uses these numbers
    with pytest.raises(ConnectorInputError, match="numbers holds no category"):
        stores.numbers.erase(EraseInput(scope=subject, rules=[EraseRule(category="x")]))


def test_numbers_sweep_holds_nothing(stores: Stores) -> None:
    result = stores.numbers.sweep(SweepInput(sweep_id="SWEEP-N", as_of=NOW, rules=[]))
    assert result.anonymised == {} and not result.already_done
    assert stores.numbers.sweep(SweepInput(sweep_id="SWEEP-N", as_of=NOW, rules=[])).already_done
    with pytest.raises(ConnectorInputError):
        stores.numbers.sweep(
            SweepInput(sweep_id="SWEEP-N2", as_of=NOW, rules=[EraseRule(category="phone_number")])
        )

