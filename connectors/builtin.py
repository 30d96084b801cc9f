"""The reference connectors shipped with the product, built from settings (their demo data:
``connectors.seeds``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from connectors import (
    conversations,
    email,
    flow_builder,
    inbox,
    marketing,
    numbers,
    push,
    voice,
)
from connectors.cdp_store import CdpBase
from connectors.customer_account import CustomerAccountConnector
from connectors.dataset.registered import registered_connector
from connectors.reference import reference_connector
from connectors.sms import SmsConnector
from connectors.video_store import VideoBase
from connectors.widget_store import WidgetBase
from dsr.blobstore import BlobStore
from dsr.connector_contract import Connector
from dsr.connector_registry import Registry, RegistryError, load_registry
from dsr.settings import Settings


class Factory(Protocol):
    """A connector class: its store's URL, the blob store, the server secret, and the earlier
    secrets still held for matching."""

    def __call__(self, engine_or_url: str, blobs: BlobStore, secret: bytes, *,
                 previous_secrets: Sequence[bytes] = ()) -> Connector: ...


BUILTIN: dict[str, Factory] = {
    "sms": SmsConnector,
    "customer_account": CustomerAccountConnector,
    "voice": voice.VoiceConnector,
    "numbers": numbers.NumbersConnector,
    "inbox": inbox.InboxConnector,
    "flow_builder": flow_builder.FlowBuilderConnector,
    "email": email.EmailConnector,
    "video": reference_connector("video", VideoBase),
    "widget": reference_connector("widget", WidgetBase),
    "push": push.PushConnector,
    "conversations": conversations.ConversationsConnector,
    "cdp": reference_connector("cdp", CdpBase),
    "marketing": marketing.MarketingConnector,
}


def build_connector(name: str, settings: Settings, blobs: BlobStore) -> Connector:
    """A built-in connector, or one the registry makes from a dataset file
    (``connectors.dataset.registered``: ``DatasetError`` lists what is wrong with it), on
    its store's URL (``DSR_CONNECTOR_<NAME>_URL``)."""
    previous = [secret.get_secret_value().encode() for secret in settings.hmac_key_previous]
    url = settings.connector_database_url(name)
    if name in BUILTIN:
        return BUILTIN[name](url, blobs, settings.secret, previous_secrets=previous)
    entry = load_registry(settings.connector_registry).get(name)
    if entry.dataset is None:
        raise KeyError(f"connector {name} is neither built in nor made from a dataset file")
    return registered_connector(entry, url, blobs, settings.secret, previous_secrets=previous)


def served_connectors(registry: Registry) -> list[str]:
    """The connectors a worker can serve: the built-in ones, and those the registry makes
    from a dataset file (``RegistryError`` for an entry naming one under a built-in name,
    unless it is the built-in connector's own file: a reference connector made from one)."""
    datasets = [entry.name for entry in registry.connectors if entry.dataset is not None]
    clashing = [entry.name for entry in registry.connectors if entry.dataset is not None
                and entry.name in BUILTIN and entry.dataset_path != builtin_dataset(entry.name)]
    if clashing:
        raise RegistryError(f"connector(s) {', '.join(clashing)} built in: their registry "
                            "entries cannot name a dataset")
    return [*BUILTIN, *(name for name in datasets if name not in BUILTIN)]


def builtin_dataset(name: str) -> Path | None:
    """The dataset file a built-in connector is made from, if it is (``connectors.reference``)."""
    path = getattr(BUILTIN[name], "dataset_file", None)
    return path if isinstance(path, Path) else None

