"""The hold check: what each erasure may remove now, and what the retention duties and legal
holds keep, until when."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from temporalio import activity

from activities.interfaces.legal_hold import CHECK_HOLDS, HoldCheck
from dsr.connector_registry import Registry, load_registry
from dsr.holds import Hold, active_holds
from dsr.models import Identity, IdentityType
from dsr.register import RequestRecord, subject_forms
from dsr.retention import ErasurePlan, load_retention_policy, plan_erasure
from dsr.settings import Settings


class LegalHoldActivities:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._settings = settings
        self._engine = engine

    @activity.defn(name=CHECK_HOLDS.name)
    def assess(self, check: HoldCheck) -> ErasurePlan:
        policy = load_retention_policy(self._settings.policy_dir / "retention.yaml")
        if not check.apply_drafts:
            policy = policy.without_drafts()
        registry = load_registry(self._settings.connector_registry)
        declared = {e.name: set(e.categories) for e in registry.connectors if e.categories}
        return plan_erasure(
            check.discoveries, check.as_of, policy, declared, self._holds(check, registry)
        )

    def _holds(self, check: HoldCheck, registry: Registry) -> HeldBy:
        with Session(self._engine) as session:
            request = session.get(RequestRecord, check.request_id)
            if request is None:
                raise LookupError(f"request {check.request_id} is not in the register")
            subject, customer = set(request.subject_hashes), request.customer_account
        subject |= set(subject_forms(self._settings.server_keys, check.identities))
        holds = active_holds(self._engine, check.as_of)
        # The subject's own customer account (a request about the account's data).
        customers = {
            hold.customer_account
            for hold in holds
            if hold.customer_account and subject & self._account_forms(hold.customer_account)
        }
        if customer is not None:
            customers.add(customer)
        products = {entry.name: entry.products for entry in registry.connectors}
        return HeldBy(holds, subject, customers, products)

    def _account_forms(self, account_id: str) -> set[str]:
        identity = Identity(type=IdentityType.ACCOUNT_ID, value=account_id)
        return set(subject_forms(self._settings.server_keys, [identity]))


class HeldBy:
    """Which active hold, if any, keeps a category of one subject's data at a connector."""

    def __init__(
        self,
        holds: list[Hold],
        subject: set[str],
        customers: set[str],
        products: dict[str, list[str]],
    ) -> None:
        self._holds, self._subject, self._customers = holds, subject, customers
        self._products = products

    def __call__(self, connector: str, category: str) -> Hold | None:
        covering = [
            hold
            for hold in self._holds
            if hold.covers(
                self._subject, self._customers, self._products.get(connector, []), category
            )
        ]
        # An open-ended hold outlasts any dated one.
        return max(covering, key=lambda h: (h.until is None, h.until), default=None)
