"""Discovery: which of the affiliates' connectors hold the person's data, and how much."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.interfaces.policy import RequestPolicy
    from dsr import connector_contract as p
    from dsr import search_attributes as sa
    from dsr.connector_registry import ConnectorEntry, DataRole
    from dsr.models import RightsRequest
    from workflows.models import ConnectorState, ConnectorStatus

from workflows.connectors import ConnectorCalls, connector_scope


class Discovery(ConnectorCalls):
    async def _discover(self, request: RightsRequest, policy: RequestPolicy) -> list[p.Discovery]:
        self._begin("discover")
        connectors = applicable_connectors(request, policy.connectors)
        for entry in connectors:
            self._connectors[entry.name] = ConnectorState(connector=entry.name)
        found = await asyncio.gather(
            *(
                self._call_connector(entry, p.Operation.DISCOVER,
                                     connector_scope(request, entry, self._now()), p.Discovery)
                for entry in connectors
            )
        )
        discoveries = [d for d in found if isinstance(d, p.Discovery)]
        for discovery in discoveries:
            self._connectors[discovery.connector].status = ConnectorStatus.DONE
            self._held[discovery.connector] = discovery.records
        holding = [d.connector for d in discoveries if d.records]
        affiliates = sorted({self._entry_or_fail(n).affiliate for n in holding})
        self._upsert(sa.AFFILIATES.value_set(affiliates))
        self._done("discover", f"{len(holding)} of {len(connectors)} connectors hold data")
        await self._milestone(
            "discover",
            "discover",
            affiliates=affiliates,
            detail={d.connector: d.records for d in discoveries},
        )
        self._check_stopped()
        return discoveries


def applicable_connectors(
    request: RightsRequest, connectors: list[ConnectorEntry]
) -> list[ConnectorEntry]:
    """A customer's instruction reaches its end users' data only; anyone else's request
    reaches the group's own data."""
    role = DataRole.END_USER if request.customer_scope else DataRole.GROUP
    types = {identity.type for identity in request.identities}
    return [
        entry
        for entry in connectors
        if entry.role is role
        and p.Operation.DISCOVER in entry.operations
        and types & set(entry.identity_types)
    ]
