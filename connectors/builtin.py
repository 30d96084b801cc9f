"""The reference connectors shipped with the product, built from settings."""

from __future__ import annotations

from collections.abc import Callable

from connectors.base import Connector
from connectors.customer_account import CustomerAccountConnector
from connectors.sms import SmsConnector
from dsr.blobstore import LocalBlobStore
from dsr.settings import Settings

Factory = Callable[[str, LocalBlobStore, bytes], Connector]

BUILTIN: dict[str, Factory] = {
    "sms": SmsConnector,
    "customer_account": CustomerAccountConnector,
}


def build_connector(name: str, settings: Settings, blobs: LocalBlobStore) -> Connector:
    return BUILTIN[name](settings.connector_database_url(name), blobs, settings.secret)
