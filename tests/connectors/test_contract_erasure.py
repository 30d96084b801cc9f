"""The contract every product connector keeps in changing data: erase and restrict done once,
unknown categories refused, corrected identities kept restricted, end users scoped by customer."""

from __future__ import annotations

import inspect
from datetime import timedelta
from typing import Any

import pytest

from connectors.builtin import BUILTIN
from connectors.kit.errors import ConnectorInputError
from dsr.connector_contract import AccessInput, EraseInput, EraseRule, FlagInput, RectifyInput
from dsr.models import Correction, Identity, IdentityType
from tests.connectors.helpers import CONNECTORS, CUTOFF, NOW, REGISTRY, dump, store_table
from tests.connectors.stores import Stores

# Connectors holding categories of personal data (numbers holds none: nothing to erase or
# restrict; tests/connectors/test_numbers.py shows every operation finds nothing there).
HOLDING = [name for name in CONNECTORS if REGISTRY.get(name).categories]
# End-user data is the customer's, scoped by customer account; the group's own data
# (customer accounts, marketing) is found without one.
END_USER = [name for name in CONNECTORS if REGISTRY.get(name).role.value == "end_user"]
# What a corrected identity is corrected to, by identity type (an address as typed: it is
# kept, and restricted, normalised).
CORRECTED = {
    IdentityType.EMAIL: "Corrected.Address@example.org",
    IdentityType.PHONE: "+447700900999",
}


def _corrects_identities(name: str) -> bool:
    """Restrictions kept as keyed identities (not a flag on the record, as customer accounts
    keep them: the flag moves with the record, and its own tests show it; a dataset
    connector keeps them keyed) by a connector whose rectify corrects an identity."""
    connector: Any = BUILTIN[name]
    correctable = set(getattr(connector, "correctable", ()))
    keyed = hasattr(connector, "dataset") or connector.restriction_model is not None
    return keyed and bool(
        correctable & {kind.value for kind in CORRECTED}
    )


RECTIFYING = [name for name in CONNECTORS if _corrects_identities(name)]


def is_restricted(connector: Any, customer: str, identity: Identity) -> bool:
    """The connector's ``is_restricted``, asked as it asks: with the customer (end-user
    data) or without (the group's own), for the identity or for its value."""
    parameters = list(inspect.signature(connector.is_restricted).parameters.values())
    if len(parameters) == 2 and parameters[0].annotation == "Identity":  # a dataset connector's
        return bool(connector.is_restricted(identity, customer))
    value = identity if parameters[-1].annotation == "Identity" else identity.value
    return bool(connector.is_restricted(*((customer, value) if len(parameters) == 2 else (value,))))


# --- erase --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOLDING)
def test_erase_retry_is_already_done_and_changes_nothing(stores: Stores, name: str) -> None:
    connector, subject = stores.connectors[name], stores.subjects[name]
    rules = [EraseRule(category=c, before=CUTOFF) for c in connector.categories]
    call = EraseInput(scope=subject.scope("REQ-R001"), rules=rules)
    first = connector.erase(call)
    snapshot = dump(stores.db(name))
    later = subject.scope("REQ-R001").model_copy(update={"as_of": NOW + timedelta(1)})

    retry = connector.erase(call.model_copy(update={"scope": later}))

    assert retry.already_done and not first.already_done
    assert (retry.erased, retry.retained) == (first.erased, first.retained)
    assert sum(first.erased.values()) > 0
    assert dump(stores.db(name)) == snapshot


@pytest.mark.parametrize("name", CONNECTORS)
def test_an_unknown_category_is_refused_without_its_data(stores: Stores, name: str) -> None:
    connector = stores.connectors[name]
    # A category another connector holds.
    category = next(
        c for other in CONNECTORS for c in REGISTRY.get(other).categories
        if c not in connector.categories
    )
    call = EraseInput(scope=stores.subjects[name].scope(), rules=[EraseRule(category=category)])
    snapshot = dump(stores.db(name))

    with pytest.raises(ConnectorInputError, match=f"{name} holds no category named '{category}'"):
        connector.erase(call)
    assert dump(stores.db(name)) == snapshot


# --- restrict -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOLDING)
def test_restrict_and_lift(stores: Stores, name: str) -> None:
    """What a restriction counts is the connector's own (the calls of a number, the messages
    of its threads, every record...): each connector's own tests pin it down."""
    subject, connector = stores.subjects[name], stores.connectors[name]
    identities = subject.scope().identities

    def restricted_at(customer: str) -> list[bool]:
        return [is_restricted(connector, customer, identity) for identity in identities]

    restricted = connector.restrict(FlagInput(scope=subject.scope("REQ-S001")))
    retried = connector.restrict(FlagInput(scope=subject.scope("REQ-S001")))

    assert restricted.records > 0 and not restricted.already_done
    assert retried.already_done and retried.records == restricted.records
    assert all(restricted_at(subject.controller))
    if name in END_USER:
        assert not any(restricted_at(subject.others[0]))
        assert not any(restricted_at("CUST-9999"))
    if connector.restriction_model is not None:  # kept as keyed hashes, one per identity
        stored = stores.query(name, f"SELECT * FROM {store_table(name, 'restrictions')}")
        assert len(stored) == len(identities)
        values = {i.value for i in identities} | {i.value.lower() for i in identities}
        assert not any(values & set(row.values()) for row in stored)

    lifted = connector.restrict(FlagInput(scope=subject.scope("REQ-S001"), lift=True))

    assert not lifted.already_done and lifted.records == restricted.records
    assert not any(restricted_at(subject.controller))


def rectify_identities(stores: Stores, name: str, request_id: str) -> list[Identity]:
    """Correct the subject's identities at its controller; the corrected identities."""
    connector = stores.connectors[name]
    corrected = [
        Identity(type=kind, value=value)
        for kind, value in CORRECTED.items()
        if kind.value in connector.correctable
    ]
    corrections = [Correction(field=i.type.value, value=i.value) for i in corrected]
    scope = stores.subjects[name].scope(request_id)
    result = connector.rectify(RectifyInput(scope=scope, corrections=corrections))
    assert all(result.updated[i.type.value] > 0 for i in corrected)
    return corrected


@pytest.mark.parametrize("name", RECTIFYING)
def test_a_rectified_identity_stays_restricted(stores: Stores, name: str) -> None:
    subject, connector = stores.subjects[name], stores.connectors[name]
    connector.restrict(FlagInput(scope=subject.scope("REQ-0003")))
    for kind, value in CORRECTED.items():
        identity = Identity(type=kind, value=value)
        assert not is_restricted(connector, subject.controller, identity)

    corrected = rectify_identities(stores, name, "REQ-0004")

    for identity in corrected:
        assert is_restricted(connector, subject.controller, identity)
        lowered = Identity(type=identity.type, value=identity.value.lower())
        assert is_restricted(connector, subject.controller, lowered)
        assert not any(is_restricted(connector, other, identity) for other in subject.others)
        assert not is_restricted(connector, "CUST-9999", identity)
    assert is_restricted(connector, subject.controller, subject.scope().identities[0])
    stored = stores.query(name, f"SELECT * FROM {store_table(name, 'restrictions')}")
    assert len(stored) == len(subject.identities) + len(corrected)
    values = {value for _, value in subject.identities} | {i.value for i in corrected}
    values |= {value.lower() for value in values}
    assert not any(values & set(row.values()) for row in stored)


@pytest.mark.parametrize("name", RECTIFYING)
def test_rectifying_an_unrestricted_identity_restricts_nothing(stores: Stores, name: str) -> None:
    subject, connector = stores.subjects[name], stores.connectors[name]
    connector.restrict(FlagInput(scope=subject.scope("REQ-0003")))
    connector.restrict(FlagInput(scope=subject.scope("REQ-0003"), lift=True))

    corrected = rectify_identities(stores, name, "REQ-0004")

    assert not any(is_restricted(connector, subject.controller, i) for i in corrected)
    restrictions = store_table(name, "restrictions")
    assert len(stores.rows(name, f"SELECT * FROM {restrictions}")) == len(subject.identities)


# --- scoped by customer account -----------------------------------------------------------


@pytest.mark.parametrize("name", END_USER)
def test_nothing_is_found_without_a_customer_account(stores: Stores, name: str) -> None:
    """End-user data is reached only for the customer acting for them (the group's own data
    has no customer: tests/connectors/test_marketing.py and test_customer_account.py)."""
    connector, no_customer = stores.connectors[name], stores.subjects[name].scope(customer=False)
    operations = {operation.value for operation in REGISTRY.get(name).operations}
    snapshot = dump(stores.db(name))

    discovery = connector.discover(no_customer)
    access = connector.access(AccessInput(scope=no_customer))
    rules = [EraseRule(category=c) for c in connector.categories]
    erase = connector.erase(EraseInput(scope=no_customer, rules=rules))
    restrict = connector.restrict(FlagInput(scope=no_customer))

    assert discovery.holdings == [] and access.blob_ref is None and access.records == {}
    assert erase.erased == {} and restrict.records == 0
    if "object" in operations:
        assert connector.object(FlagInput(scope=no_customer)).records == 0
    if "rectify" in operations:
        corrections = [Correction(field="name", value="X Y")]
        rectify = connector.rectify(RectifyInput(scope=no_customer, corrections=corrections))
        assert rectify.updated == {}
    assert dump(stores.db(name)) == snapshot
    if connector.restriction_model is not None:
        assert stores.rows(name, f"SELECT * FROM {store_table(name, 'restrictions')}") == []
