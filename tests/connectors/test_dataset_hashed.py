"""Identity columns kept hashed (``hashed: sha256``), as ad and marketing systems keep emails
and phones: the subject's identities are normalised, then hashed, to find them; a correction is
stored hashed; a hashed column cannot be left to a pseudonym treatment. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from connectors.dataset import DatasetError
from dsr.connector_contract import EraseInput, EraseRule, RectifyInput
from dsr.models import Correction
from dsr.models import IdentityType as Kind
from tests.connectors.dataset_shop import ACCOUNT, OPENED, OTHER_ACCOUNT, connector, scope

SCHEMA = [
    """CREATE TABLE audiences (
        id INTEGER PRIMARY KEY,
        customer_account VARCHAR(64) NOT NULL,
        email_sha256 CHAR(64),
        phone_sha256 CHAR(64),
        segment VARCHAR(100),
        added_at TIMESTAMP NOT NULL)""",
    "CREATE INDEX ix_audiences_email ON audiences (customer_account, email_sha256)",
    "CREATE INDEX ix_audiences_phone ON audiences (customer_account, phone_sha256)",
    "CREATE INDEX ix_audiences_added ON audiences (added_at)",
]
AUDIENCES = {
    "connector": "shop",
    "tables": {"audiences": {
        "customer_column": "customer_account", "date_column": "added_at",
        "delete_rows": "audience_membership",
        "columns": {
            "email_sha256": {"identity": "email", "hashed": "sha256"},
            "phone_sha256": {"identity": "phone", "hashed": "sha256"},
            "segment": {"category": "audience_membership"},
        }}},
}


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture
def audiences(app_database_url: str) -> Iterator[tuple[str, Engine]]:
    """Maya at two customers (by her hashed email at one, her hashed number at the other), and
    Sam."""
    engine = create_engine(app_database_url)
    OPENED.append(engine)
    rows = [(1, ACCOUNT, sha256("maya.okafor@example.net"), None, "buyers"),
            (2, ACCOUNT, None, sha256("+31612345678"), "newsletter"),
            (3, OTHER_ACCOUNT, sha256("maya.okafor@example.net"), None, "buyers"),
            (4, ACCOUNT, sha256("sam@example.org"), None, "buyers")]
    with engine.begin() as connection:
        for statement in SCHEMA:
            connection.exec_driver_sql(statement)
        for row in rows:
            connection.execute(text(
                "INSERT INTO audiences VALUES (:id, :customer, :email, :phone, :segment, :at)"),
                dict(zip(("id", "customer", "email", "phone", "segment"), row, strict=True),
                     at=datetime(2025, 1, 1)))
    try:
        yield app_database_url, engine
    finally:
        while OPENED:
            OPENED.pop().dispose()


def rows(engine: Engine) -> dict[int, dict[str, Any]]:
    with engine.connect() as connection:
        found = connection.execute(text("SELECT * FROM audiences ORDER BY id")).mappings()
        return {row["id"]: dict(row) for row in found}


MAYA = scope((Kind.EMAIL, "Maya.Okafor@Example.NET"), (Kind.PHONE, "+31612345678"))


def test_identities_are_normalised_then_hashed_to_find_the_subject(
        audiences: tuple[str, Engine], tmp_path: Path) -> None:
    shop = connector(audiences[0], AUDIENCES, tmp_path)
    assert not [w for w in shop.warnings if "audiences" in w], "hashed columns match as stored"

    found = shop.discover(MAYA)

    assert [(h.category, h.records) for h in found.holdings] == [("audience_membership", 2)]
    assert shop.locate(scope((Kind.EMAIL, "MAYA.OKAFOR@example.net"), account=None)
                       ).customers == sorted([ACCOUNT, OTHER_ACCOUNT])


def test_erasure_deletes_the_hashed_rows_of_the_instructing_customer_only(
        audiences: tuple[str, Engine], tmp_path: Path) -> None:
    shop = connector(audiences[0], AUDIENCES, tmp_path)

    result = shop.erase(EraseInput(scope=MAYA, rules=[
        EraseRule(category="audience_membership")]))

    assert result.erased == {"audience_membership": 2}
    assert sorted(rows(audiences[1])) == [3, 4]


def test_a_correction_is_stored_hashed(audiences: tuple[str, Engine], tmp_path: Path) -> None:
    shop = connector(audiences[0], AUDIENCES, tmp_path)

    shop.rectify(RectifyInput(scope=MAYA, corrections=[
        Correction(field="email", value="Maya@Example.org")]))

    assert rows(audiences[1])[1]["email_sha256"] == sha256("maya@example.org")
    assert rows(audiences[1])[3]["email_sha256"] == sha256("maya.okafor@example.net")
    assert shop.discover(scope((Kind.EMAIL, "maya@example.org"))).holdings


@pytest.mark.parametrize(("column", "problem"), [
    ({"identity": "email", "hashed": "sha256", "category": "audience_membership",
      "treatment": "pseudonym"}, "audiences.email_sha256: a hashed identity already looks like "
     "a pseudonym"),
    ({"hashed": "sha256", "category": "audience_membership", "treatment": "null"},
     "audiences.email_sha256: hashed, but holds no identity"),
])
def test_a_hashed_column_is_declared_with_its_identity_and_a_real_treatment(
        audiences: tuple[str, Engine], tmp_path: Path, column: dict[str, Any],
        problem: str) -> None:
    data = {**AUDIENCES, "tables": {"audiences": {
        **AUDIENCES["tables"]["audiences"],  # type: ignore[index]
        "columns": {**AUDIENCES["tables"]["audiences"]["columns"],  # type: ignore[index]
                    "email_sha256": column}}}}
    with pytest.raises(DatasetError) as error:
        connector(audiences[0], data, tmp_path)
    assert any(found.startswith(problem) for found in error.value.problems), error.value.problems
