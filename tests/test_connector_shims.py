"""The deprecated connector modules still serve an affiliate's connector written against them
for one release: ``connectors.protocol`` (the contract) and ``connectors.base`` (the kit and
the ``Connector`` protocol) give the same objects as their new homes, and say they are
deprecated. The one test module that imports the shims."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import connectors.kit as kit
import dsr.connector_contract as contract

CONTRACT_NAMES = ["Operation", "Scope", "EraseInput", "EraseResult", "EraseRule", "Discovery",
                  "CategoryHolding", "AccessInput", "AccessResult", "FlagInput", "FlagResult",
                  "SweepInput", "SweepResult", "Strategy", "Treatment", "activity_name", "treat"]
KIT_NAMES = ["StoreConnector", "SubjectConnector", "CutoffConnector", "Store",
             "OperationLogMixin", "UtcDateTime", "RestrictionMixin", "Restrictions",
             "ConnectorInputError", "operation_key", "erase_cutoffs", "country_conditions",
             "id_chunks", "export_once", "connector_activities", "create_store_engine",
             "sweep_scope", "is_restricted", "EXPORT_CHUNK_ROWS"]


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_connectors_protocol_still_gives_the_contract(name: str) -> None:
    protocol = importlib.import_module("connectors.protocol")
    assert getattr(protocol, name) is getattr(contract, name)


@pytest.mark.parametrize("name", KIT_NAMES)
def test_connectors_base_still_gives_the_kit(name: str) -> None:
    base = importlib.import_module("connectors.base")
    assert getattr(base, name) is getattr(kit, name)


@pytest.mark.parametrize("name", ["Connector", "Operation", "Scope", "EraseInput", "Treatment"])
def test_connectors_base_still_gives_what_it_took_from_the_contract(name: str) -> None:
    base = importlib.import_module("connectors.base")
    assert getattr(base, name) is getattr(contract, name)


def test_every_name_connectors_base_exports_resolves() -> None:
    base = importlib.import_module("connectors.base")
    assert all(hasattr(base, name) for name in base.__all__)


@pytest.mark.parametrize("module", ["connectors.protocol", "connectors.base"])
def test_the_shims_say_they_are_deprecated(module: str) -> None:
    doc = importlib.import_module(module).__doc__ or ""
    assert doc.startswith("Deprecated, kept for one release")


def test_an_affiliate_connector_written_against_the_shims_still_runs(tmp_path: Path) -> None:
    from connectors.base import (
        Connector,
        CutoffConnector,
        OperationLogMixin,
        UtcDateTime,
        connector_activities,
    )
    from connectors.protocol import EraseInput, EraseRule, Scope, Treatment
    from dsr.blobstore import LocalBlobStore

    class Schema(DeclarativeBase):
        pass

    class Log(OperationLogMixin, Schema):
        pass

    class Row(Schema):
        __tablename__ = "rows"
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str] = mapped_column(String(200))
        at: Mapped[datetime] = mapped_column(UtcDateTime)

    class Affiliate(CutoffConnector[str]):
        name: ClassVar[str] = "affiliate"
        activities: ClassVar[tuple[str, ...]] = ("erase",)
        categories: ClassVar[tuple[str, ...]] = ("rows",)
        treatments: ClassVar[tuple[Treatment, ...]] = ()
        schema = Schema
        operation_log = Log

        def subject(self, scope: Scope) -> str | None:
            return None  # nobody is held here: erase answers with an empty result

    connector = Affiliate(f"sqlite:///{tmp_path / 'a.db'}", LocalBlobStore(tmp_path / "blobs"),
                          b"k" * 32)
    declared: Connector = connector  # what the worker serves
    scope = Scope(request_id="r-1", identities=[], as_of=datetime.now(UTC))
    result = connector.erase(EraseInput(scope=scope, rules=[EraseRule(category="rows")]))
    assert result.connector == "affiliate" and result.erased == {}
    assert [a.__name__ for a in connector_activities(declared)] == ["affiliate_erase"]
