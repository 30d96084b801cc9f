"""Settings from environment variables (prefix ``DSR_``) or a settings file.

The settings file is ``dsr.env`` in the working directory, or the path in ``DSR_SETTINGS_FILE``.
Everything defaults to the embedded stack under ``var/``.
"""

from __future__ import annotations

import getpass
import os
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dsr.blobstore import parse_blob_url
from dsr.models import Right
from dsr.server_secret import embedded_secret, refusal
from dsr.serverkeys import ServerKeys

POLICY_DIR = Path(__file__).parent / "policy"


class SmtpSecurity(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DSR_",
        env_file=os.environ.get("DSR_SETTINGS_FILE", "dsr.env"),
        extra="forbid",
    )

    data_dir: Path = Path("var")

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = Field(default=8233, ge=1, le=65535)
    temporal_retention_days: int = Field(default=30, ge=1, le=3650)
    task_queue: str = "dsr-orchestrator"
    # A production cluster: TLS with the system's CAs, or the server CA given here; mTLS with
    # a client certificate and key; or an API key (Temporal Cloud), which implies TLS.
    temporal_tls: bool = False
    temporal_tls_ca: Path | None = None
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_api_key: SecretStr | None = None
    # A self-hosted cluster with Temporal's JWT authorizer: a bearer token from this OAuth2
    # token endpoint (client-credentials grant, as this client, with this scope if the
    # identity provider needs one), fetched again before it expires (dsr/temporal_token.py).
    temporal_token_url: str | None = None
    temporal_token_client_id: str | None = None
    temporal_token_client_secret: SecretStr | None = None
    temporal_token_scope: str | None = None
    # Prometheus metrics (the SDK's and the product's) on this port; None: off. Bound to
    # 127.0.0.1 on one host, 0.0.0.0 in a compose container, the pod's IP in Kubernetes.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_bind_host: str = "127.0.0.1"
    metrics_refresh_seconds: float = Field(default=60, gt=0, le=3600)
    # On SIGTERM a worker stops polling and lets running activities finish for this long.
    worker_shutdown_grace_seconds: float = Field(default=30, ge=0, le=3600)
    # Workflows the orchestrator worker keeps in memory (the SDK's default, 1000): each open
    # request beyond it is replayed from its history when it next moves or is queried.
    worker_max_cached_workflows: int = Field(default=1000, ge=0, le=100_000)
    # Import the workflow code (workflows.*) once, outside the per-workflow sandbox, instead of
    # again for each workflow the worker starts or replays (about 30 ms of CPU each). Faster;
    # but the sandbox no longer catches a non-deterministic call in that code (the replay of
    # the recorded histories in the test suite still does).
    worker_passthrough_workflow_modules: bool = False

    database_url: str | None = None
    # Where exports and packages live: None is the folder data_dir/blobs; or a URL,
    # file:///abs/path or s3://bucket/prefix?endpoint_url=...&region=... (S3 credentials come
    # from the standard AWS environment variables or config, never from the URL).
    blob_url: str | None = None
    # Where the audit ledger's head is anchored (dsr/anchors.py): None or empty, the file
    # data_dir/ledger-anchors.jsonl (one host); in a cluster s3://bucket/prefix?endpoint_url=
    # ...&region=..., a bucket with Object Lock, each anchor an object locked in compliance
    # mode for ledger_anchor_retention_days (as long as the ledger lives). `ledger verify`
    # fails when no anchor is newer than ledger_anchor_max_age_hours (anchored hourly).
    ledger_anchor_url: str | None = None
    ledger_anchor_retention_days: int = Field(default=3650, ge=1, le=36500)
    ledger_anchor_max_age_hours: float = Field(default=26, gt=0, le=24 * 366)

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=8025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: SmtpSecurity = SmtpSecurity.NONE
    sender_address: str = "privacy@group.example"
    officer_address: str = "privacy-officer@group.example"
    officer_name: str = Field(default_factory=getpass.getuser)
    # The officer's own key and the credential the directory issued for it (starter.py
    # officers keygen, starter.py login); by default under the data folder.
    officer_key_file: Path | None = None
    officer_credential_file: Path | None = None
    # The officer service, which holds the product's secrets and acts on officers' signed
    # actions (services.officer_service): where it listens, and where officers' CLIs reach it.
    officer_service_port: int = Field(default=8083, ge=1, le=65535)
    officer_service_bind_host: str = "127.0.0.1"
    officer_service_url: str = "http://127.0.0.1:8083"

    hmac_key: SecretStr | None = None
    # Earlier server secrets, kept after a change of secret for matching only: codes, links
    # and sessions they made keep working until they expire (dsr/serverkeys.py).
    hmac_key_previous: list[SecretStr] = Field(default_factory=list)
    # Payload encryption keys, "id:base64key,id2:base64key" (32-byte AES keys), newest last;
    # or on the embedded stack a key file generated once under var/secrets/.
    payload_keys: SecretStr | None = None
    payload_key_file: Path | None = None
    # The codec server the Web UI and CLI decode through, and who may call it.
    codec_port: int = Field(default=8081, ge=1, le=65535)
    # Where the codec server listens: 127.0.0.1 on one host, 0.0.0.0 in a container.
    codec_bind_host: str = "127.0.0.1"
    codec_allowed_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:8233", "http://127.0.0.1:8233"]
    )
    ui_session_hours: int = Field(default=8, ge=1, le=24 * 7)
    # The codec server's address as browsers reach it (session links, the Web UI's codec
    # endpoint); https makes the session cookie Secure. None: http on the Web UI's host.
    codec_public_url: str | None = None
    # Where the Web UI signs officers in with OIDC (services/oidc.py; no issuer: sessions from the
    # CLI only): the issuer and audience bearer tokens must carry; the issuer's key set (None:
    # the jwks_uri of its discovery document), cached this long, fetched again for an unknown
    # key id at most this often; the claim holding the officer's roles or groups (a dotted
    # path reaches into an object: realm_access.roles), and the roles that may decode, encode.
    codec_oidc_issuer: str | None = None
    codec_oidc_audience: str | None = None
    codec_oidc_jwks_url: str | None = None
    codec_oidc_jwks_cache_seconds: float = Field(default=300, gt=0, le=86400)
    codec_oidc_jwks_refetch_seconds: float = Field(default=30, ge=0, le=3600)
    codec_oidc_role_claim: str = Field(default="roles", min_length=1, max_length=200)
    codec_oidc_read_roles: list[str] = Field(
        default_factory=lambda: ["officer", "approver", "auditor", "administrator"]
    )
    codec_oidc_encode_roles: list[str] = Field(default_factory=lambda: ["administrator"])
    # Where requesters download their access packages: the landing page's public address,
    # the port the download server listens on, and how long a link works.
    public_base_url: str = "http://localhost:8082"
    download_port: int = Field(default=8082, ge=1, le=65535)
    download_bind_host: str = "127.0.0.1"
    package_link_days: int = Field(default=5, ge=1, le=90)
    # The download server's limits, per process (services/ratelimit.py): download POSTs per link
    # and requests per client address (an IPv6 client by its /64) in any 60 seconds; and how
    # many reverse proxies in front of it append to X-Forwarded-For (0: the peer's address).
    download_posts_per_token: int = Field(default=5, ge=1, le=1000)
    download_requests_per_client: int = Field(default=60, ge=1, le=100_000)
    download_proxy_hops: int = Field(default=0, ge=0, le=10)
    policy_dir: Path = POLICY_DIR
    connector_registry: Path = Path(__file__).parent.parent / "connectors" / "registry.yaml"

    code_validity_hours: int = Field(default=72, ge=1, le=24 * 30)
    code_max_attempts: int = Field(default=5, ge=1, le=20)
    panel_reauth_minutes: int = Field(default=15, ge=1, le=24 * 60)
    web_ui_url: str = "http://localhost:8233"
    approval_required_for: list[Right] = Field(default_factory=list)
    connector_max_attempts: int = Field(default=5, ge=1, le=100)
    connector_retry_seconds: float = Field(default=1.0, gt=0, le=3600)
    # A connector call no worker picks up within this is marked missing and called again
    # after connector_missing_retry_seconds, doubling up to 30 minutes.
    connector_start_timeout_seconds: float = Field(default=300, gt=0, le=86400)
    connector_missing_retry_seconds: float = Field(default=60, gt=0, le=3600)
    # A connector worker that dies mid-call is noticed after this without a heartbeat.
    connector_heartbeat_seconds: float = Field(default=120, gt=0, le=3600)

    @field_validator("hmac_key")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        problem = None if value is None else refusal(value.get_secret_value())
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("hmac_key_previous")
    @classmethod
    def _previous_secrets(cls, values: list[SecretStr]) -> list[SecretStr]:
        if any(not value.get_secret_value() for value in values):
            raise ValueError("holds an empty value: list only the earlier secrets")
        return values

    @field_validator("temporal_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("must be host:port, for example localhost:7233")
        return value

    @field_validator("temporal_tls_ca", "temporal_tls_cert", "temporal_tls_key")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _client_certificate_pair(self) -> Settings:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError(
                "mTLS needs both DSR_TEMPORAL_TLS_CERT and DSR_TEMPORAL_TLS_KEY, or neither")
        return self

    @field_validator("temporal_token_url")
    @classmethod
    def _token_url(cls, value: str | None) -> str | None:
        if value is not None and not secure_url(value):
            raise ValueError("must be an https:// address (http:// only on localhost): "
                             "the client secret is sent to it")
        return value

    @model_validator(mode="after")
    def _token_source_complete(self) -> Settings:
        client = (self.temporal_token_client_id, self.temporal_token_client_secret)
        if self.temporal_token_url is None:
            if any(value is not None for value in client):
                raise ValueError("DSR_TEMPORAL_TOKEN_CLIENT_ID and _CLIENT_SECRET need "
                                 "DSR_TEMPORAL_TOKEN_URL, the token endpoint")
            return self
        if not self.temporal_token_client_id or self.temporal_token_client_secret is None:
            raise ValueError("DSR_TEMPORAL_TOKEN_URL needs DSR_TEMPORAL_TOKEN_CLIENT_ID and "
                             "DSR_TEMPORAL_TOKEN_CLIENT_SECRET")
        if self.temporal_api_key is not None:
            raise ValueError("DSR_TEMPORAL_API_KEY and DSR_TEMPORAL_TOKEN_URL both set the "
                             "authorization header: set one")
        tls = self.temporal_tls or self.temporal_tls_ca or self.temporal_tls_cert
        host = self.temporal_address.rpartition(":")[0].strip("[]")
        if not tls and host not in LOOPBACK_HOSTS:
            raise ValueError("a bearer token travels only over TLS: set DSR_TEMPORAL_TLS (or "
                             "the client certificate) for a Temporal that is not on this host")
        return self

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s):// address, for example https://privacy.example")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must be a plain address without query, fragment or credentials")
        return value

    @field_validator("codec_public_url")
    @classmethod
    def _codec_public_url(cls, value: str | None) -> str | None:
        return None if value is None else cls._public_base_url(value).rstrip("/")

    @field_validator("codec_oidc_issuer", "codec_oidc_jwks_url")
    @classmethod
    def _oidc_url(cls, value: str | None) -> str | None:
        if value is not None and not secure_url(value):
            raise ValueError("must be an https:// address (http:// only on localhost)")
        return value

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if (self.codec_oidc_issuer is None) != (self.codec_oidc_audience is None):
            raise ValueError("bearer tokens need both DSR_CODEC_OIDC_ISSUER and "
                             "DSR_CODEC_OIDC_AUDIENCE, or neither")
        if self.codec_oidc_jwks_url and not self.codec_oidc_issuer:
            raise ValueError("DSR_CODEC_OIDC_JWKS_URL needs DSR_CODEC_OIDC_ISSUER and _AUDIENCE")
        if not any(role.strip() for role in self.codec_oidc_read_roles):
            raise ValueError("DSR_CODEC_OIDC_READ_ROLES names no role: nobody could decode")
        return self

    @field_validator("blob_url")
    @classmethod
    def _blob_url(cls, value: str | None) -> str | None:
        if value is not None:
            parse_blob_url(value)
        return value

    @field_validator("ledger_anchor_url")
    @classmethod
    def _ledger_anchor_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            parsed = parse_blob_url(value)
        except ValueError as error:
            raise ValueError(str(error).replace("blob store URL", "anchor store URL")) from None
        if parsed.scheme != "s3":
            raise ValueError("must be s3://bucket/prefix (a bucket with Object Lock), or empty "
                             "for the file data_dir/ledger-anchors.jsonl")
        return value

    @property
    def app_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'dsr.db'}"

    def connector_database_url(self, connector: str) -> str:
        env = os.environ.get(f"DSR_CONNECTOR_{connector.upper()}_URL")
        return env or f"sqlite:///{self.data_dir / 'connectors' / f'{connector}.db'}"

    @property
    def officer_key_path(self) -> Path:
        return self.officer_key_file or self.data_dir / "officer" / "officer.key"

    @property
    def officer_credential_path(self) -> Path:
        return self.officer_credential_file or self.data_dir / "officer" / "credential.jwt"

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @cached_property
    def server_keys(self) -> ServerKeys:
        """The server secret's keys by purpose, with the previous secrets' for matching."""
        previous = [value.get_secret_value().encode() for value in self.hmac_key_previous]
        return ServerKeys(self.secret, previous)

    @cached_property
    def secret(self) -> bytes:
        """The server-side key for identity and code HMACs.

        From ``DSR_HMAC_KEY``, or on the embedded stack a key generated once under
        ``var/secrets/``.
        """
        if self.hmac_key is not None:
            return self.hmac_key.get_secret_value().encode()
        return embedded_secret(self.data_dir / "secrets" / "hmac.key")


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def secure_url(value: str) -> bool:
    """An https:// address, or http:// on this host only (a local identity provider)."""
    parts = urlsplit(value)
    if not parts.hostname or parts.username or parts.password:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)


class SettingsError(Exception):
    """Settings that do not validate, with one line per problem."""


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        lines = [
            (f"DSR_{'_'.join(str(part) for part in e['loc']).upper()}" if e["loc"]
             else "settings") + f": {e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        ]
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
