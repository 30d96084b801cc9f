"""Connecting to Temporal with the product's data converter (the Schedules: ``dsr.schedules``)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from dsr.converter import data_converter
from dsr.keyring import Keyring, load_keyring
from dsr.settings import Settings


async def connect(
    settings: Settings, keyring: Keyring | None = None, runtime: Runtime | None = None
) -> Client:
    """A client with the product's converter: pydantic payloads encrypted with the payload
    keys (``keyring``, or loaded from the settings; a bad key raises ``KeyringError``), over
    TLS, mTLS or with an API key as the settings say."""
    api_key = settings.temporal_api_key
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(keyring or load_keyring(settings)),
        tls=tls_config(settings),
        api_key=api_key.get_secret_value() if api_key else None,
        runtime=runtime,
    )


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS to the cluster: the server CA and client certificate when given; the system's CAs
    for plain TLS or an API key (Temporal Cloud); none on the embedded stack."""
    ca, cert, key = settings.temporal_tls_ca, settings.temporal_tls_cert, settings.temporal_tls_key
    if ca is None and cert is None:
        return settings.temporal_tls or settings.temporal_api_key is not None
    return TLSConfig(
        server_root_ca_cert=ca.read_bytes() if ca else None,
        client_cert=cert.read_bytes() if cert else None,
        client_private_key=key.read_bytes() if key else None,
    )
