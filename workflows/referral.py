"""An end user who writes to the group directly about data a customer controls: the group
is only that customer's processor, so the request is referred to every customer holding the
person's data, each told with a reference, and the requester is told which ones."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.interfaces.policy import RequestPolicy
    from dsr import connector_contract as p
    from dsr.connector_registry import ConnectorEntry, DataRole
    from dsr.models import RightsRequest
    from workflows.models import ConnectorState

from workflows.connectors import ConnectorCalls, connector_scope


class Referral(ConnectorCalls):
    async def _refer(self, request: RightsRequest, policy: RequestPolicy) -> None:
        locators = customer_locators(request, policy.connectors)
        if not locators:
            self._skip("refer", "no customer-controlled data to refer")
            return
        self._begin("refer")
        customers = await self._locate(request, locators)
        for customer in customers:
            await self._refer_to(request, customer)
        self._done("refer", f"referred to {len(customers)} customers")
        await self._milestone("refer", "refer", detail={"customers": customers})

    async def _locate(self, request: RightsRequest, locators: list[ConnectorEntry]) -> list[str]:
        for entry in locators:
            self._connectors[entry.name] = ConnectorState(connector=entry.name)
        found = await asyncio.gather(
            *(
                self._call_connector(entry, p.Operation.LOCATE,
                                     connector_scope(request, entry, self._now()), p.Located)
                for entry in locators
            )
        )
        for entry in locators:  # locating is not acting: no outcome of their own
            self._connectors.pop(entry.name, None)
        return sorted({c for located in found if located for c in located.customers})

    async def _refer_to(self, request: RightsRequest, customer: str) -> None:
        contact = await self._registered_contact(customer)
        self._referrals.append(contact.get("company_name") or customer)
        if not contact.get("email"):
            return  # no registered address: the officer sees it in the register milestone
        await self._notice(
            "referral",
            to=contact["email"],
            key=f"referral.{customer}",
            customer_account=customer,
            rights=[right.value for right in request.rights],
            identities=[f"{i.type.value}: {i.value}" for i in request.identities],
            received_on=request.received_at.date().isoformat(),
        )


def customer_locators(
    request: RightsRequest, connectors: list[ConnectorEntry]
) -> list[ConnectorEntry]:
    """The connectors that find which customers hold an end user's data; none for a
    customer's own instruction (nothing to refer)."""
    if request.customer_scope is not None:
        return []
    types = {identity.type for identity in request.identities}
    return [
        entry
        for entry in connectors
        if entry.role is DataRole.END_USER
        and entry.supports(p.Operation.LOCATE)
        and types & set(entry.identity_types)
    ]
