"""The connector kit: what a connector with its own store builds on (the store and its
operation log, cutoffs, restrictions, exports, base classes, Temporal activities)."""

from connectors.kit.activities import connector_activities, heartbeat
from connectors.kit.connector import CutoffConnector, StoreConnector, SubjectConnector, sweep_scope
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
from connectors.kit.restrictions import RestrictionMixin, Restrictions, is_restricted
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

__all__ = [
    "END_OF_TIME",
    "EXPORT_CHUNK_ROWS",
    "SWEEP_CHUNK_ROWS",
    "ConnectorInputError",
    "CutoffConnector",
    "Export",
    "OperationKey",
    "OperationLogMixin",
    "RestrictionMixin",
    "Restrictions",
    "Store",
    "StoreConnector",
    "SubjectConnector",
    "UtcDateTime",
    "as_engine",
    "connector_activities",
    "country_conditions",
    "create_store_engine",
    "discover_holdings",
    "erase_cutoffs",
    "export_jsonl",
    "export_key",
    "export_once",
    "heartbeat",
    "id_chunks",
    "is_restricted",
    "operation_key",
    "sweep_cutoffs",
    "sweep_key",
    "sweep_scope",
]
