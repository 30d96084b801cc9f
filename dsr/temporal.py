"""Connecting to Temporal with the product's data converter (the Schedules: ``dsr.schedules``)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from dsr.converter import data_converter
from dsr.keyring import Keyring, load_keyring
from dsr.settings import Settings
from dsr.temporal_token import TokenSource, keep_fresh


async def connect(
    settings: Settings, keyring: Keyring | None = None, runtime: Runtime | None = None
) -> Client:
    """A client with the product's converter: pydantic payloads encrypted with the payload
    keys (``keyring``, or loaded from the settings; a bad key raises ``KeyringError``), over
    TLS, mTLS or with an API key as the settings say; with a bearer token from
    ``DSR_TEMPORAL_TOKEN_URL`` when set, renewed before it expires (a refused client raises
    ``TokenError`` before any connection is made)."""
    api_key = settings.temporal_api_key
    converter = data_converter(keyring or load_keyring(settings))
    source = TokenSource.from_settings(settings)
    token = await source.fetch() if source else None
    client = await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=converter,
        tls=tls_config(settings),
        api_key=api_key.get_secret_value() if api_key else None,
        rpc_metadata=token.metadata if token else {},
        runtime=runtime,
    )
    if source and token:
        keep_fresh(client, source, token)
    return client


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
