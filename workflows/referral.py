"""An end user who writes to the group directly about data a customer controls: the group
is only that customer's processor, so the request is referred to every customer holding the
person's data, each told with a reference, and the requester is told which ones."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from dsr import connector_contract as p
    from dsr.connector_registry import ConnectorEntry, DataRole
    from workflows.models import ConnectorState

from workflows.instructions import Instructions


class Referral(Instructions):
    async def _refer(self) -> None:
        locators = self._locators()
        if not locators:
            self._skip("refer", "no customer-controlled data to refer")
            return
        self._begin("refer")
        customers = await self._locate(locators)
        for customer in customers:
            await self._refer_to(customer)
        self._done("refer", f"referred to {len(customers)} customers")
        await self._milestone("refer", "refer", detail={"customers": customers})

    def _locators(self) -> list[ConnectorEntry]:
        if self._req.customer_scope is not None:
            return []  # a customer's own instruction: nothing to refer
        types = {identity.type for identity in self._req.identities}
        return [
            entry
            for entry in self._pol.connectors
            if entry.role is DataRole.END_USER
            and entry.supports(p.Operation.LOCATE)
            and types & set(entry.identity_types)
        ]

    async def _locate(self, locators: list[ConnectorEntry]) -> list[str]:
        for entry in locators:
            self._connectors[entry.name] = ConnectorState(connector=entry.name)
        found = await asyncio.gather(
            *(
                self._call_connector(entry, p.Operation.LOCATE, self._scope(entry), p.Located)
                for entry in locators
            )
        )
        for entry in locators:  # locating is not acting: no outcome of their own
            self._connectors.pop(entry.name, None)
        return sorted({c for located in found if located for c in located.customers})

    async def _refer_to(self, customer: str) -> None:
        contact = await self._registered_contact(customer)
        self._referrals.append(contact.get("company_name") or customer)
        if not contact.get("email"):
            return  # no registered address: the officer sees it in the register milestone
        request = self._req
        await self._notice(
            "referral",
            to=contact["email"],
            key=f"referral.{customer}",
            customer_account=customer,
            rights=[right.value for right in request.rights],
            identities=[f"{i.type.value}: {i.value}" for i in request.identities],
            received_on=request.received_at.date().isoformat(),
        )
