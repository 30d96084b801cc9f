"""Deprecated, kept for one release: ``connectors/base.py`` became the connector kit.
Import from the new homes; this module only re-exports them:

- ``Connector`` (the protocol every connector implements): ``dsr.connector_contract``
- ``ConnectorInputError``: ``connectors.kit.errors``
- ``UtcDateTime``, ``create_store_engine``, ``as_engine``, ``Store``, ``OperationLogMixin``,
  ``OperationKey``, ``operation_key``, ``sweep_key``: ``connectors.kit.store``
- ``erase_cutoffs``, ``sweep_cutoffs``, ``country_conditions``, ``id_chunks``,
  ``END_OF_TIME``, ``SWEEP_CHUNK_ROWS``: ``connectors.kit.cutoffs``
- ``RestrictionMixin``, ``Restrictions``, ``is_restricted``: ``connectors.kit.restrictions``
- ``export_jsonl``, ``export_once``, ``export_key``, ``discover_holdings``, ``Export``,
  ``EXPORT_CHUNK_ROWS``: ``connectors.kit.exports``
- ``StoreConnector``, ``SubjectConnector``, ``CutoffConnector``, ``sweep_scope``:
  ``connectors.kit.connector``
- ``connector_activities``, ``heartbeat``: ``connectors.kit.activities``
- the contract's models (``Scope``, ``EraseInput``, ...): ``dsr.connector_contract``

``connectors.kit`` re-exports the kit's public names. Setting ``SWEEP_CHUNK_ROWS`` here has
no effect: set it on ``connectors.kit.cutoffs``.
"""

from connectors.kit.activities import connector_activities, heartbeat
from connectors.kit.connector import (
    CutoffConnector,
    Reach,
    StoreConnector,
    Subject,
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
from connectors.kit.restrictions import RestrictionMixin, Restrictions, is_restricted
from connectors.kit.store import (
    OperationKey,
    OperationLogMixin,
    Result,
    Store,
    UtcDateTime,
    as_engine,
    create_store_engine,
    operation_key,
    sweep_key,
)
from dsr.connector_contract import (
    AccessInput,
    AccessResult,
    CategoryHolding,
    Connector,
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
    export_area,
)

__all__ = [
    "END_OF_TIME",
    "EXPORT_CHUNK_ROWS",
    "SWEEP_CHUNK_ROWS",
    "AccessInput",
    "AccessResult",
    "CategoryHolding",
    "Connector",
    "ConnectorInputError",
    "CutoffConnector",
    "Discovery",
    "EraseInput",
    "EraseResult",
    "EraseRule",
    "Export",
    "FlagInput",
    "FlagResult",
    "Located",
    "Operation",
    "OperationKey",
    "OperationLogMixin",
    "Reach",
    "RectifyInput",
    "RectifyResult",
    "RestrictionMixin",
    "Restrictions",
    "Result",
    "Scope",
    "Store",
    "StoreConnector",
    "Subject",
    "SubjectConnector",
    "SweepInput",
    "SweepResult",
    "Treatment",
    "UtcDateTime",
    "as_engine",
    "connector_activities",
    "country_conditions",
    "create_store_engine",
    "discover_holdings",
    "erase_cutoffs",
    "export_area",
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
