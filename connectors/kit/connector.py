"""The connector base classes: a store of its own (``StoreConnector``), each operation done
once for the subject the scope names (``SubjectConnector``), erase rules by date alone
(``CutoffConnector``)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Engine, Select
from sqlalchemy.orm import DeclarativeBase, Session

from connectors.kit.cutoffs import erase_cutoffs, sweep_cutoffs
from connectors.kit.exports import discover_holdings, export_once
from connectors.kit.restrictions import RestrictionMixin, Restrictions
from connectors.kit.store import OperationLogMixin, Store, operation_key, sweep_key
from connectors.kit.treatments import Normalise, Treatments
from dsr.blobstore import BlobStore
from dsr.connector_contract import (
    AccessInput,
    AccessResult,
    CategoryHolding,
    Discovery,
    EraseInput,
    EraseResult,
    EraseRule,
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
from dsr.models import Correction
from dsr.serverkeys import ServerKeys

Subject = TypeVar("Subject")  # how a connector finds one subject's records
Reach = TypeVar("Reach")  # what erase rules reach in a connector's records
# The activities of a connector keeping end users' data for the customers (their processor).
PROCESSOR_ACTIVITIES = ("discover", "access", "erase", "restrict", "locate", "sweep")


class StoreConnector:
    """A connector with its own store: the store (its tables, ``schema``, and its operation
    log), the blob store for exports, the deployment's secret and, with a
    ``restriction_model``, its restrictions. ``sweep`` is done here once for every connector;
    the connector anonymises in ``sweep_now``."""

    name: ClassVar[str]
    categories: ClassVar[tuple[str, ...]]
    schema: ClassVar[type[DeclarativeBase]]
    operation_log: ClassVar[type[OperationLogMixin]]
    restriction_model: ClassVar[type[RestrictionMixin] | None] = None
    treatments: ClassVar[tuple[Treatment, ...]] = ()  # what erasing each category does
    # How a pseudonym column's value is written before it is hashed, per "table.column".
    pseudonym_forms: ClassVar[Mapping[str, Normalise]] = {}
    sweeps_countries: ClassVar[bool] = False  # whether a sweep rule may name countries_ended
    # Whether erasure marks the rows it treats and never reaches them again: a pseudonym
    # column then holds originals only, each hashed even if it looks like a pseudonym.
    marks_treated: ClassVar[bool] = False

    restrictions: Restrictions  # only with a restriction model

    def __init__(self, engine_or_url: Engine | str, blobs: BlobStore, secret: bytes, *,
                 previous_secrets: Sequence[bytes] = ()) -> None:
        """``previous_secrets``: earlier server secrets, kept to match what they hashed."""
        self.store = Store(engine_or_url, self.schema, self.operation_log)
        self.identity_index = ServerKeys(secret, previous_secrets).identities
        if self.restriction_model is not None:
            self.restrictions = Restrictions(self.restriction_model, self.identity_index)
        self.blobs = blobs
        self.secret = secret
        # The only writer of declared columns when erasing or sweeping.
        self.treat = Treatments(self.treatments, self.schema.metadata.tables, secret,
                                normalise=self.pseudonym_forms,
                                originals_only=self.marks_treated)

    def sweep(self, call: SweepInput) -> SweepResult:
        """Anonymise every customer's records past their retention, as ``erase`` would."""
        cutoffs = sweep_cutoffs(self.name, call.rules, self.categories, self.sweeps_countries)
        key = sweep_key(self.secret, call)
        return self.store.once(
            key, SweepResult, lambda session: self.sweep_now(session, call, cutoffs)
        )

    def sweep_now(
        self, session: Session, call: SweepInput, cutoffs: dict[str, datetime]
    ) -> SweepResult:
        """The sweep, inside its transaction: ``cutoffs`` are the checked widest cutoffs."""
        raise NotImplementedError(f"{self.name} does not sweep")


class SubjectConnector(StoreConnector, Generic[Subject, Reach]):
    """A connector that finds the subject from the request's scope alone.

    Each public operation is done here once: no subject, an empty result (nothing recorded);
    else the operation, once per key, through the hooks the connector provides for the subject
    it found. A connector whose operation does not fit this shape overrides it."""

    correctable: ClassVar[Collection[str]] = ()  # the fields ``rectify`` corrects

    # --- hooks -----------------------------------------------------------------------------

    def subject(self, scope: Scope) -> Subject | None:
        """The subject the scope names, or None: nothing of it can be held here."""
        raise NotImplementedError(f"{self.name} finds no subject")

    def holding(self, session: Session, subject: Subject, category: str) -> CategoryHolding | None:
        """The subject's records of one category, if any."""
        raise NotImplementedError(f"{self.name} discovers no category")

    def export_chunks(
        self, session: Session, subject: Subject
    ) -> Iterable[Iterable[Mapping[str, Any]]]:
        """The subject's export records (each with its ``category``), a chunk at a time."""
        raise NotImplementedError(f"{self.name} exports nothing")

    def reach(self, rules: list[EraseRule]) -> Reach:
        """What erase rules reach, checked before the subject is looked up (a bad rule fails
        even when no subject is found)."""
        raise NotImplementedError(f"{self.name} erases nothing")

    def erase_now(
        self, session: Session, subject: Subject, reach: Reach, scope: Scope
    ) -> EraseResult:
        """The erasure, inside its transaction."""
        raise NotImplementedError(f"{self.name} erases nothing")

    def corrections(self, corrections: list[Correction]) -> dict[str, str]:
        """The corrected value per field, the last one given winning, each ``corrected``."""
        return {c.field: self.corrected(c.field, c.value) for c in corrections}

    def corrected(self, field: str, value: str) -> str:
        """One corrected value, checked (an error names the field, never the value) and
        normalised; as given by default."""
        return value

    def rectify_now(
        self, session: Session, subject: Subject, values: dict[str, str], scope: Scope
    ) -> dict[str, int]:
        """Correct the ``correctable`` fields, inside the transaction; records per field."""
        raise NotImplementedError(f"{self.name} rectifies nothing")

    def restrict_now(self, session: Session, subject: Subject, call: FlagInput) -> int:
        """Restrict the subject (or lift), inside the transaction; the records covered."""
        raise NotImplementedError(f"{self.name} restricts nothing")

    def holders(self, scope: Scope) -> Select[Any] | None:
        """The customer accounts holding records of the scope's identities, across customers;
        None without an identity the connector matches."""
        raise NotImplementedError(f"{self.name} locates nothing")

    # --- operations ------------------------------------------------------------------------

    def discover(self, scope: Scope) -> Discovery:
        subject = self.subject(scope)
        if subject is None:
            return Discovery(connector=self.name)
        return discover_holdings(
            self.store,
            self.name,
            self.categories,
            lambda session, category: self.holding(session, subject, category),
        )

    def access(self, call: AccessInput) -> AccessResult:
        subject = self.subject(call.scope)
        if subject is None:
            return AccessResult(connector=self.name)
        key = operation_key(self.secret, Operation.ACCESS, call)
        return export_once(
            self.store,
            self.blobs,
            self.name,
            key,
            lambda session: self.export_chunks(session, subject),
        )

    def erase(self, call: EraseInput) -> EraseResult:
        reach = self.reach(call.rules)
        subject = self.subject(call.scope)
        if subject is None:
            return EraseResult(connector=self.name)
        key = operation_key(self.secret, Operation.ERASE, call)
        return self.store.once(
            key, EraseResult, lambda session: self.erase_now(session, subject, reach, call.scope)
        )

    def rectify(self, call: RectifyInput) -> RectifyResult:
        corrections = self.corrections(call.corrections)
        subject = self.subject(call.scope)
        unsupported = sorted(field for field in corrections if field not in self.correctable)
        if subject is None:
            return RectifyResult(connector=self.name, unsupported_fields=unsupported)
        values = {f: v for f, v in corrections.items() if f in self.correctable}
        key = operation_key(self.secret, Operation.RECTIFY, call)
        return self.store.once(
            key,
            RectifyResult,
            lambda session: RectifyResult(
                connector=self.name,
                updated=self.rectify_now(session, subject, values, call.scope),
                unsupported_fields=unsupported,
            ),
        )

    def restrict(self, call: FlagInput) -> FlagResult:
        return self.flag(
            call,
            Operation.RESTRICT,
            lambda session, subject: self.restrict_now(session, subject, call),
        )

    def locate(self, scope: Scope) -> Located:
        """The customers holding records of these identities, whatever customer the scope
        names: an end user wrote to the group directly, and each of them is a controller to
        refer the request to. The one lookup across customers; account ids only, never the
        records. Read-only, so not in the operation log."""
        statement = self.holders(scope)
        if statement is None:
            return Located(connector=self.name)
        with self.store.reading() as session:
            customers = session.scalars(statement).all()
        return Located(connector=self.name, customers=list(customers))

    def flag(
        self, call: FlagInput, operation: Operation, change: Callable[[Session, Subject], int]
    ) -> FlagResult:
        """A flag operation (restrict, object...) done once: ``change`` flags the subject and
        returns the records it covers."""
        subject = self.subject(call.scope)
        if subject is None:
            return FlagResult(connector=self.name, operation=operation)
        key = operation_key(self.secret, operation, call)

        def work(session: Session) -> FlagResult:
            records = change(session, subject)
            return FlagResult(connector=self.name, operation=operation, records=records)

        return self.store.once(key, FlagResult, work)


def sweep_scope(call: SweepInput) -> Scope:
    """The scope a sweep erases under: no subject, and its sweep id for a request id."""
    return Scope(request_id=call.sweep_id, identities=[], as_of=call.as_of)


class CutoffConnector(SubjectConnector[Subject, dict[str, datetime]]):
    """A subject connector whose erase rules reach records by date alone: the widest cutoff
    per category (it keeps no country, so a rule confined to countries is refused)."""

    def reach(self, rules: list[EraseRule]) -> dict[str, datetime]:
        return erase_cutoffs(self.name, rules, self.categories)

