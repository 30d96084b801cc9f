"""Flags on the dataset connector, on SQLite and PostgreSQL: a restriction kept by keyed identity
hash in its own table and told by ``is_restricted`` (within one customer, lifted, carried over
to a rectified identity), an objection and a marketing opt-out recorded in the columns the file
flags, each once per call; the operations a dataset file supports."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from connectors.dataset import DatasetConnector, DatasetError, parse_dataset
from connectors.kit.errors import ConnectorInputError
from dsr.connector_contract import FlagInput, Operation, RectifyInput
from dsr.models import Correction, Identity
from dsr.models import IdentityType as Kind
from tests.connectors.dataset_shop import (
    ACCOUNT,
    EMAIL,
    OTHER_ACCOUNT,
    PHONE,
    connector,
    dump,
    opened_database,
    scope,
    shop,
)
from tests.connectors.helpers import NOW

MAYA = scope((Kind.EMAIL, EMAIL.upper()), (Kind.PHONE, PHONE))
MAYA_EMAIL = Identity(type=Kind.EMAIL, value=EMAIL)
MAYA_PHONE = Identity(type=Kind.PHONE, value=PHONE)


@pytest.fixture
def database(app_database_url: str) -> Iterator[tuple[str, Engine]]:
    with opened_database(app_database_url) as opened:
        with opened[1].begin() as connection:  # a boolean column for objections
            connection.exec_driver_sql("ALTER TABLE customers ADD COLUMN objected BOOLEAN")
        yield opened


def objecting() -> dict[str, Any]:
    """The shop's file, its customers' ``objected`` column recording objections."""
    data = shop()
    data["tables"]["customers"]["columns"]["objected"] = {"flag": "object"}
    return data


@pytest.fixture
def shop_connector(database: tuple[str, Engine], tmp_path: Path) -> DatasetConnector:
    return connector(database[0], objecting(), tmp_path)


def flag(call_scope: Any = MAYA, lift: bool = False) -> FlagInput:
    return FlagInput(scope=call_scope, lift=lift)


def customer_rows(engine: Engine) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in dump(engine)["customers"]}


def own_rows(shop_connector: DatasetConnector, model: Any) -> list[dict[str, Any]]:
    with shop_connector.store.reading() as session:
        return [{column.name: getattr(row, column.name) for column in model.__table__.columns}
                for row in session.scalars(select(model))]


# --- restriction -----------------------------------------------------------------------------


def test_a_restriction_is_kept_by_keyed_hash_once_per_customer(
        shop_connector: DatasetConnector, database: tuple[str, Engine]) -> None:
    before = dump(database[1])
    result = shop_connector.restrict(flag())
    assert (result.operation, result.records) == (Operation.RESTRICT, 3)  # her row, 2 orders
    assert dump(database[1]) == before  # the shop's rows are not touched
    assert shop_connector.is_restricted(MAYA_EMAIL, ACCOUNT)
    assert shop_connector.is_restricted(MAYA_PHONE, ACCOUNT)
    assert not shop_connector.is_restricted(MAYA_EMAIL, OTHER_ACCOUNT)  # B did not ask
    assert not shop_connector.is_restricted(Identity(type=Kind.EMAIL, value="sam@example.org"),
                                            ACCOUNT)
    kept = own_rows(shop_connector, shop_connector.flags.restrictions.model)
    assert len(kept) == 2 and {row["customer_account"] for row in kept} == {ACCOUNT}
    for row in kept:  # keyed hashes, never the identities
        assert len(row["identity_hash"]) == 64
        assert not {EMAIL, EMAIL.upper(), PHONE, "0612345678"} & set(map(str, row.values()))
    again = shop_connector.restrict(flag())
    assert again == result.model_copy(update={"already_done": True})
    later = shop_connector.restrict(flag(scope((Kind.EMAIL, EMAIL), request_id="req-2")))
    assert not later.already_done
    assert len(own_rows(shop_connector, shop_connector.flags.restrictions.model)) == 2


def test_a_restriction_is_lifted(shop_connector: DatasetConnector) -> None:
    shop_connector.restrict(flag())
    lifted = shop_connector.restrict(flag(scope((Kind.EMAIL, EMAIL), request_id="req-2"),
                                          lift=True))
    assert lifted.records == 3
    assert not shop_connector.is_restricted(MAYA_EMAIL, ACCOUNT)
    assert shop_connector.is_restricted(MAYA_PHONE, ACCOUNT)  # only her email was named
    with pytest.raises(ValueError, match="within one customer account"):
        shop_connector.is_restricted(MAYA_EMAIL)


def test_a_rectified_identity_stays_restricted(shop_connector: DatasetConnector) -> None:
    shop_connector.restrict(flag())
    corrected = "maya@example.org"
    shop_connector.rectify(RectifyInput(scope=MAYA, corrections=[
        Correction(field="email", value=corrected)]))
    assert shop_connector.is_restricted(Identity(type=Kind.EMAIL, value=corrected), ACCOUNT)
    assert shop_connector.is_restricted(MAYA_EMAIL, ACCOUNT)  # should it come back


def test_nothing_is_flagged_without_a_customer_account_or_a_held_identity(
        shop_connector: DatasetConnector) -> None:
    for nobody in (scope((Kind.EMAIL, EMAIL), account=None),
                   scope((Kind.CHANNEL_ID, "line:maya"))):
        assert shop_connector.restrict(flag(nobody)).records == 0
        assert shop_connector.object(flag(nobody)).records == 0
    assert own_rows(shop_connector, shop_connector.flags.restrictions.model) == []
    assert own_rows(shop_connector, shop_connector.flags.model) == []
    assert own_rows(shop_connector, shop_connector.store.log_model) == []


def test_the_groups_own_data_is_restricted_under_no_customer(
        database: tuple[str, Engine], tmp_path: Path) -> None:
    data = shop()
    data["role"] = "group"
    group = connector(database[0], data, tmp_path)
    assert group.restrict(flag(scope((Kind.EMAIL, EMAIL), account=None))).records == 5
    assert group.is_restricted(MAYA_EMAIL)
    assert [row["customer_account"] for row in own_rows(
        group, group.flags.restrictions.model)] == ["-"]


# --- objection and opt-out --------------------------------------------------------------------


def test_an_objection_sets_the_flagged_column_once(
        shop_connector: DatasetConnector, database: tuple[str, Engine]) -> None:
    before = customer_rows(database[1])
    result = shop_connector.object(flag())
    assert (result.operation, result.records) == (Operation.OBJECT, 1)  # her customer row
    after = customer_rows(database[1])
    assert after == {**before, 1: {**before[1], "objected": True}}
    assert shop_connector.is_flagged(Operation.OBJECT, MAYA_EMAIL, ACCOUNT)
    assert not shop_connector.is_flagged(Operation.OBJECT, MAYA_EMAIL, OTHER_ACCOUNT)
    assert not shop_connector.is_restricted(MAYA_EMAIL, ACCOUNT)  # another flag
    assert shop_connector.object(flag()).already_done
    recorded = own_rows(shop_connector, shop_connector.flags.model)
    assert {(row["operation"], len(row["identity_hash"])) for row in recorded} == {
        ("object", 64)}
    assert len(recorded) == 2  # her email and her phone
    with pytest.raises(ConnectorInputError, match="shop cannot lift object"):
        shop_connector.object(flag(lift=True))


def test_an_opt_out_keeps_the_time_first_asked(
        shop_connector: DatasetConnector, database: tuple[str, Engine]) -> None:
    first = shop_connector.marketing_opt_out(flag())
    assert first.records == 1
    stamped = customer_rows(database[1])[1]["newsletter_opt_out_at"]
    assert stamped == NOW.replace(tzinfo=None)
    later = scope((Kind.EMAIL, EMAIL), request_id="req-2").model_copy(
        update={"as_of": NOW + timedelta(days=3)})
    assert not shop_connector.marketing_opt_out(flag(later)).already_done
    rows = customer_rows(database[1])
    assert rows[1]["newsletter_opt_out_at"] == stamped
    assert rows[2]["newsletter_opt_out_at"] is None  # her record at B
    assert len(own_rows(shop_connector, shop_connector.flags.model)) == 2


# --- what a file supports ---------------------------------------------------------------------


def test_a_flag_needs_a_column_flagged_with_it(shop_connector: DatasetConnector) -> None:
    dataset = parse_dataset(shop())
    assert Operation.OBJECT not in dataset.supported
    assert Operation.RESTRICT in dataset.supported  # kept by the connector itself
    with pytest.raises(DatasetError) as error:
        DatasetConnector.for_dataset(dataset, ["discover", "object", "withdraw_consent"])
    assert error.value.problems == [
        "operation object: the dataset connector cannot do it (no column of the dataset is "
        "flagged object)",
        "operation withdraw_consent: the dataset connector cannot do it (no column of the "
        "dataset is flagged withdraw_consent)"]
    assert "object" in shop_connector.activities
    assert "withdraw_consent" not in shop_connector.activities


def test_a_flag_column_must_fit(database: tuple[str, Engine], tmp_path: Path) -> None:
    data = shop()
    columns = data["tables"]["customers"]["columns"]
    columns["name"] = {"flag": "object"}
    columns["created_at"] = {"flag": "withdraw_consent"}
    columns["email"] = {**columns["email"], "flag": "restrict"}
    with pytest.raises(DatasetError) as error:
        connector(database[0], data, tmp_path)
    assert error.value.problems == [
        "customers.email: holds an identity, so it cannot record restrict",
        "customers.name: flag object needs a timestamp, date or boolean column",
        "customers.created_at: flag withdraw_consent needs a nullable column (no value: not "
        "flagged)"]
