"""The reference connectors shipped with the product, built from settings (their demo data:
``connectors.seeds``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from connectors import (
    cdp,
    conversations,
    email,
    flow_builder,
    inbox,
    marketing,
    numbers,
    push,
    video,
    voice,
    widget,
)
from connectors.customer_account import CustomerAccountConnector
from connectors.sms import SmsConnector
from dsr.blobstore import BlobStore
from dsr.connector_contract import Connector
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
    "video": video.VideoConnector,
    "widget": widget.WidgetConnector,
    "push": push.PushConnector,
    "conversations": conversations.ConversationsConnector,
    "cdp": cdp.CdpConnector,
    "marketing": marketing.MarketingConnector,
}


def build_connector(name: str, settings: Settings, blobs: BlobStore) -> Connector:
    previous = [secret.get_secret_value().encode() for secret in settings.hmac_key_previous]
    return BUILTIN[name](settings.connector_database_url(name), blobs, settings.secret,
                         previous_secrets=previous)

