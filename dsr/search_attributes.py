"""The product's one fixed set of custom search attributes (within the dev server's limits:
10 Keyword, 3 KeywordList, 3 Datetime, 3 Text). Values never carry personal data."""

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
