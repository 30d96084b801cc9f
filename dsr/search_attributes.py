"""The product's one fixed set of custom search attributes (within the dev server's limits:
10 Keyword, 3 KeywordList, 3 Datetime, 3 Text). Values never carry personal data.

A self-hosted namespace gets them from :func:`ensure` (``python starter.py setup-cluster``, and
the embedded stack); Temporal Cloud creates them with its own tool (:func:`cloud_commands`).
Workers refuse to start while any is missing (:func:`missing`).
"""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey

STATUS = SearchAttributeKey.for_keyword("DsrStatus")
JURISDICTION = SearchAttributeKey.for_keyword("DsrJurisdiction")
CHANNEL = SearchAttributeKey.for_keyword("DsrChannel")
REQUESTER = SearchAttributeKey.for_keyword("DsrRequester")
STEP = SearchAttributeKey.for_keyword("DsrStep")
PRODUCT = SearchAttributeKey.for_keyword("DsrProduct")
HOLD_REASON = SearchAttributeKey.for_keyword("DsrHoldReason")
RIGHTS = SearchAttributeKey.for_keyword_list("DsrRights")
AFFILIATES = SearchAttributeKey.for_keyword_list("DsrAffiliates")
CONNECTORS_ATTENTION = SearchAttributeKey.for_keyword_list("DsrConnectorsAttention")
RECEIVED_AT = SearchAttributeKey.for_datetime("DsrReceivedAt")
DUE_AT = SearchAttributeKey.for_datetime("DsrDueAt")
ERASE_AT = SearchAttributeKey.for_datetime("DsrEraseAt")
OVERDUE = SearchAttributeKey.for_bool("DsrOverdue")

ALL = (
    STATUS, JURISDICTION, CHANNEL, REQUESTER, STEP, PRODUCT, HOLD_REASON,
    RIGHTS, AFFILIATES, CONNECTORS_ATTENTION, RECEIVED_AT, DUE_AT, ERASE_AT, OVERDUE,
)

_TYPE_NAMES = {
    "KEYWORD": "Keyword",
    "KEYWORD_LIST": "KeywordList",
    "DATETIME": "Datetime",
    "BOOL": "Bool",
}


def dev_server_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={_TYPE_NAMES[key.indexed_value_type.name]}"]
    return flags


class SearchAttributeError(Exception):
    """A search attribute is registered with another type: the message says which."""


async def missing(client: Client, namespace: str) -> list[str]:
    """The product's search attributes the namespace lacks, as ``Name=Type``; raises
    ``SearchAttributeError`` for one registered with another type."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    registered = dict(listed.custom_attributes)
    absent = []
    for key in ALL:
        if key.name not in registered:
            absent.append(_spec(key))
        elif registered[key.name] != IndexedValueType.ValueType(key.indexed_value_type):
            raise SearchAttributeError(
                f"search attribute {key.name} is registered with another type in namespace "
                f"{namespace}; it must be {_spec(key)}"
            )
    return absent


async def ensure(client: Client, namespace: str) -> list[str]:
    """Register the missing search attributes (idempotent); returns those added."""
    absent = await missing(client, namespace)
    if absent:
        types = {key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in ALL}
        await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={spec.split("=")[0]: types[spec.split("=")[0]] for spec in absent},
        ))
    return absent


def cloud_commands(namespace: str) -> list[str]:
    """The Temporal Cloud equivalent: ``tcld`` commands that add each search attribute."""
    return [f"tcld namespace search-attributes add --namespace {namespace} "
            f"--search-attribute {_spec(key)}" for key in ALL]


def _spec(key: SearchAttributeKey) -> str:  # type: ignore[type-arg]
    return f"{key.name}={_TYPE_NAMES[key.indexed_value_type.name]}"
