"""The connector kit: what a connector with its own store builds on (the store and its
operation log, cutoffs, restrictions, exports, base classes, Temporal activities, and the
queries, reach, shares, countries, identities and suppressions connectors share)."""

from connectors.kit.activities import connector_activities, heartbeat
from connectors.kit.connector import (
    PROCESSOR_ACTIVITIES,
    CutoffConnector,
    StoreConnector,
    SubjectConnector,
    sweep_scope,
)
from connectors.kit.countries import country_holding, counts_by_country, holding_by_country
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
    EndUser,
    IdentityColumns,
    checked_identity,
    customer_identity_values,
    identities_of,
    identity_values,
    stored_values,
)
from connectors.kit.queries import (
    DatedRows,
    Held,
    any_of,
    batched,
    changed,
    count_rows,
    export_partitions,
    fields,
    holding,
    update_rows,
)
from connectors.kit.reach import either, in_chunks, sweep_chunks, widest
from connectors.kit.restrictions import RestrictionMixin, Restrictions, is_restricted
from connectors.kit.shares import Share, erase_dated, erase_shares, export_shares, sweep_shares
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
    "DatedRows",
    "EndUser",
    "Export",
    "Held",
    "IdentityColumns",
    "OperationKey",
    "OperationLogMixin",
    "RestrictionMixin",
    "Restrictions",
    "Share",
    "Store",
    "StoreConnector",
    "SubjectConnector",
    "SuppressionMixin",
    "Suppressions",
    "UtcDateTime",
    "any_of",
    "as_engine",
    "batched",
    "changed",
    "checked_identity",
    "connector_activities",
    "count_rows",
    "country_conditions",
    "country_holding",
    "counts_by_country",
    "create_store_engine",
    "customer_identity_values",
    "discover_holdings",
    "either",
    "erase_cutoffs",
    "erase_dated",
    "erase_shares",
    "export_jsonl",
    "export_key",
    "export_once",
    "export_partitions",
    "export_shares",
    "fields",
    "heartbeat",
    "holding",
    "holding_by_country",
    "id_chunks",
    "identities_of",
    "identity_values",
    "in_chunks",
    "is_restricted",
    "operation_key",
    "stored_values",
    "sweep_chunks",
    "sweep_cutoffs",
    "sweep_key",
    "sweep_scope",
    "sweep_shares",
    "update_rows",
    "widest",
]
