"""The connector kit: what a connector with its own store builds on (the store and its
operation log, cutoffs, restrictions, exports, base classes, Temporal activities, and the
queries, reach, sources, identities and suppressions connectors share)."""

from connectors.kit.activities import connector_activities, heartbeat
from connectors.kit.connector import (
    PROCESSOR_ACTIVITIES,
    CutoffConnector,
    StoreConnector,
    SubjectConnector,
    sweep_scope,
)
from connectors.kit.cutoffs import (
    END_OF_TIME,
    SWEEP_CHUNK_ROWS,
    country_conditions,
    erase_cutoffs,
    id_chunks,
    sweep_cutoffs,
)
from connectors.kit.errors import ConnectorInputError
from connectors.kit.exports import (
    EXPORT_CHUNK_ROWS,
    Export,
    discover_holdings,
    export_jsonl,
    export_key,
    export_once,
)
from connectors.kit.identities import (
    checked_identity,
    customer_identity_values,
    identities_of,
    identity_values,
)
from connectors.kit.queries import (
    Rows,
    batched,
    count,
    country_holding,
    export_partitions,
    fields,
    holding,
    update_rows,
)
from connectors.kit.reach import either, in_chunks, widest
from connectors.kit.restrictions import RestrictionMixin, Restrictions, is_restricted
from connectors.kit.sources import Source, erase_dated, export_sources, records, sweep_dated
from connectors.kit.store import (
    OperationKey,
    OperationLogMixin,
    Store,
    UtcDateTime,
    as_engine,
    create_store_engine,
    operation_key,
    sweep_key,
)
from connectors.kit.suppressions import SuppressionMixin, Suppressions

__all__ = [
    "END_OF_TIME",
    "EXPORT_CHUNK_ROWS",
    "PROCESSOR_ACTIVITIES",
    "SWEEP_CHUNK_ROWS",
    "ConnectorInputError",
    "CutoffConnector",
    "Export",
    "OperationKey",
    "OperationLogMixin",
    "RestrictionMixin",
    "Restrictions",
    "Rows",
    "Source",
    "Store",
    "StoreConnector",
    "SubjectConnector",
    "SuppressionMixin",
    "Suppressions",
    "UtcDateTime",
    "as_engine",
    "batched",
    "checked_identity",
    "connector_activities",
    "count",
    "country_conditions",
    "country_holding",
    "create_store_engine",
    "customer_identity_values",
    "discover_holdings",
    "either",
    "erase_cutoffs",
    "erase_dated",
    "export_jsonl",
    "export_key",
    "export_once",
    "export_partitions",
    "export_sources",
    "fields",
    "heartbeat",
    "holding",
    "id_chunks",
    "identities_of",
    "identity_values",
    "in_chunks",
    "is_restricted",
    "operation_key",
    "records",
    "sweep_cutoffs",
    "sweep_dated",
    "sweep_key",
    "sweep_scope",
    "update_rows",
    "widest",
]
