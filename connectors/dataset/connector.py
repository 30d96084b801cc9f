"""A connector made from a dataset file: the contract's operations over an affiliate's own
relational database, from its declarations alone (``connectors/README.md``, "A dataset file").

``dataset_connector(path)`` is a connector class like the built-in ones: its ``name``,
``activities``, ``categories`` and ``treatments`` come from the file, and
``connector_activities(cls(url, blobs, secret))`` serves it on a worker (a registry entry naming
the file is served by ``python worker.py --connector NAME``: ``connectors.dataset.registered``).
Starting it checks the file against the database (``connectors.dataset.schema``) and creates
its own tables (``connectors.dataset.own``): it never creates or alters the affiliate's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Engine, Select
from sqlalchemy.orm import Session

from connectors.dataset.erasure import Erasure, check_rules, dataset_treatments_of
from connectors.dataset.flags import Flags
from connectors.dataset.model import Dataset, DatasetError, dataset_treatments, load_dataset
from connectors.dataset.own import own_tables
from connectors.dataset.reach import Reach, Rows
from connectors.dataset.records import export_chunks, holding
from connectors.dataset.rectify import correct, correct_field, corrections, found_by_identity
from connectors.dataset.schema import check_dataset
from connectors.dataset.sweep import sweep
from connectors.kit.errors import ConnectorInputError
from connectors.kit.exports import discover_holdings, export_once
from connectors.kit.store import Store, as_engine, operation_key
from dsr.blobstore import BlobStore
from dsr.connector_contract import (
    AccessInput,
    AccessResult,
    Discovery,
    EraseInput,
    EraseResult,
    FlagInput,
    FlagResult,
    Located,
    Operation,
    RectifyInput,
    RectifyResult,
    Scope,
    SweepInput,
    SweepResult,
    Treatment,
)
from dsr.connector_registry import DataRole
from dsr.models import Identity
from dsr.serverkeys import ServerKeys


class DatasetConnector:
    """The contract over a dataset; ``for_dataset`` makes the class of one dataset."""

    name: ClassVar[str]
    activities: ClassVar[tuple[str, ...]]
    categories: ClassVar[tuple[str, ...]]
    treatments: ClassVar[tuple[Treatment, ...]]
    correctable: ClassVar[tuple[str, ...]]  # the fields its rectify corrects
    dataset: ClassVar[Dataset]

    def __init__(self, engine_or_url: Engine | str, blobs: BlobStore, secret: bytes, *,
                 previous_secrets: Sequence[bytes] = ()) -> None:
        """Checks the dataset against the database (``DatasetError`` lists what is wrong);
        ``warnings`` are what it found worth telling (unindexed lookups, say).
        ``previous_secrets``: earlier server secrets, kept to match the flags they hashed."""
        engine = as_engine(engine_or_url)
        checked = check_dataset(self.dataset, engine)
        self.warnings = checked.warnings
        self.reach = Reach(self.dataset, checked)
        own = own_tables(self.name, engine)
        self.store = Store(engine, own.base, own.operation_log)
        self.restriction_model = own.restrictions  # restrictions, by keyed identity hash
        self.flags = Flags(self.reach, own, ServerKeys(secret, previous_secrets).identities)
        self.blobs = blobs
        self.secret = secret  # operation keys
        self.treat = dataset_treatments_of(self.reach, secret)  # pseudonyms

    @classmethod
    def for_dataset(cls, dataset: Dataset,
                    operations: Iterable[str] | None = None) -> type[DatasetConnector]:
        """The connector class of one dataset, serving ``operations`` (by default every one
        the dataset supports; ``DatasetError`` names those it cannot do)."""
        wanted = set(dataset.supported if operations is None else map(Operation, operations))
        problems = dataset.unsupported(wanted)
        if problems:
            raise DatasetError(dataset.connector, problems)
        attributes = {
            "name": dataset.connector, "dataset": dataset,
            "activities": tuple(operation.value for operation in Operation if operation in wanted),
            "categories": dataset.categories, "treatments": dataset_treatments(dataset),
            "correctable": dataset.correctable,
        }
        title = "".join(part.title() for part in dataset.connector.split("_"))
        return type(f"{title}DatasetConnector", (cls,), attributes)

    # --- operations ------------------------------------------------------------------------

    def discover(self, scope: Scope) -> Discovery:
        found: list[Rows | None] = []

        def category_holding(session: Session, category: str) -> Any:
            if not found:
                found.append(self.reach.subject_rows(session, scope))
            return holding(self.reach, found[0], category) if found[0] is not None else None

        return discover_holdings(self.store, self.name, self.categories, category_holding)

    def access(self, call: AccessInput) -> AccessResult:
        if self._out_of_scope(call.scope):
            return AccessResult(connector=self.name)
        key = operation_key(self.secret, Operation.ACCESS, call)

        def chunks(session: Session) -> Any:
            rows = self.reach.subject_rows(session, call.scope, leaves=False) or {}
            return export_chunks(self.reach, session, rows, call.scope)

        return export_once(self.store, self.blobs, self.name, key, chunks)

    def erase(self, call: EraseInput) -> EraseResult:
        check_rules(self.reach, call.rules)  # a bad rule fails even when nothing is found
        if self._out_of_scope(call.scope):
            return EraseResult(connector=self.name)
        key = operation_key(self.secret, Operation.ERASE, call)

        def work(session: Session) -> EraseResult:
            erasure = Erasure(self.reach, session, self.treat, call.scope.as_of)
            erasure.run(self.reach.subject_rows(session, call.scope) or {}, call.rules)
            return EraseResult(connector=self.name, erased=dict(erasure.erased),
                               retained=dict(erasure.retained))

        return self.store.once(key, EraseResult, work)

    def rectify(self, call: RectifyInput) -> RectifyResult:
        """Corrects identity columns (``connectors.dataset.rectify``)."""
        given = corrections(self.dataset, call.corrections)
        if self._out_of_scope(call.scope):
            return RectifyResult(connector=self.name, unsupported_fields=given.unsupported)
        key = operation_key(self.secret, Operation.RECTIFY, call)

        def work(session: Session) -> RectifyResult:
            rows = self.reach.subject_rows(session, call.scope) or {}
            found = found_by_identity(self.reach, session, rows, call.scope)
            updated = {field: correct_field(self.reach, session, found, field, value)
                       for field, value in given.fields.items()}
            updated |= {kind.value: correct(self.reach, session, found, identity)
                        for kind, identity in given.identities.items()}
            customer = self.flags.customer(call.scope.customer_account)
            for identity in given.identities.values():
                self.flags.restrictions.carry_over(session, customer, call.scope, identity)
            return RectifyResult(connector=self.name, updated=updated,
                                 unsupported_fields=given.unsupported)

        return self.store.once(key, RectifyResult, work)

    def restrict(self, call: FlagInput) -> FlagResult:
        """Restrict processing (or, with ``lift``, end the restriction): ``is_restricted``."""
        return self._flag(call, Operation.RESTRICT)

    def object(self, call: FlagInput) -> FlagResult:
        return self._flag(call, Operation.OBJECT)

    def withdraw_consent(self, call: FlagInput) -> FlagResult:
        return self._flag(call, Operation.WITHDRAW_CONSENT)

    def marketing_opt_out(self, call: FlagInput) -> FlagResult:
        return self._flag(call, Operation.MARKETING_OPT_OUT)

    def sweep(self, call: SweepInput) -> SweepResult:
        """Erase, across all customers, what is past its retention
        (``connectors.dataset.sweep``)."""
        return sweep(self.reach, self.store, self.treat, self.secret, call)

    def is_restricted(self, identity: Identity, customer_account: str | None = None) -> bool:
        """Whether processing of this identity's records is restricted (for end-user data, at
        this customer), as the kit's ``is_restricted`` tells it."""
        return self.is_flagged(Operation.RESTRICT, identity, customer_account)

    def is_flagged(self, operation: Operation, identity: Identity,
                   customer_account: str | None = None) -> bool:
        """Whether this identity restricted, objected, withdrew consent or opted out."""
        customer = self.flags.customer(customer_account)
        return self.flags.is_flagged(self.store, operation, customer, identity)

    def holders(self, scope: Scope) -> Select[Any] | None:
        """The statement ``locate`` reads the holding customers with (None: nothing to
        match), as the kit's connectors name it."""
        return self.reach.holders(scope)

    def locate(self, scope: Scope) -> Located:
        statement = self.holders(scope)
        if statement is None:
            return Located(connector=self.name)
        with self.store.reading() as session:
            return Located(connector=self.name, customers=list(session.scalars(statement)))

    # --- helpers ---------------------------------------------------------------------------

    def _flag(self, call: FlagInput, operation: Operation) -> FlagResult:
        """A flag, once per call: nothing without a customer account (end-user data) or an
        identity the dataset holds."""
        if self._out_of_scope(call.scope) or not self.flags.identities(call.scope):
            if call.lift and operation is not Operation.RESTRICT:  # refused all the same
                raise ConnectorInputError(f"{self.name} cannot lift {operation.value}")
            return FlagResult(connector=self.name, operation=operation)
        key = operation_key(self.secret, operation, call)

        def work(session: Session) -> FlagResult:
            rows = self.reach.subject_rows(session, call.scope) or {}
            records = self.flags.apply(session, rows, call, operation)
            return FlagResult(connector=self.name, operation=operation, records=records)

        return self.store.once(key, FlagResult, work)

    def _out_of_scope(self, scope: Scope) -> bool:
        """End-user data without a customer account: nothing is ever looked up."""
        return self.dataset.role is DataRole.END_USER and scope.customer_account is None


def dataset_connector(path: Path) -> type[DatasetConnector]:
    """The connector class of a dataset file (its shape checked; the database is checked
    when an instance starts)."""
    return DatasetConnector.for_dataset(load_dataset(path))
