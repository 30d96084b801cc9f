"""The deployment's files (deploy/ and the Dockerfile) parse, name only real settings, give each
component the settings it needs with values Settings accepts, and commit no secret."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.builtin import BUILTIN
from dsr.settings import Settings
from tests.deploy_manifests import (
    COMPONENTS,
    COMPONENTS_ERROR,
    COMPOSE_DIR,
    COMPOSE_FILE,
    DEPLOY,
    DOCKERFILE,
    DOCKERIGNORE,
    K8S_DIR,
    ROOT,
    TEMPORAL_CALLERS,
    Component,
    _deploy_files,
    _env_file,
    _ids,
    _k8s_sources,
    _load_all,
)

PLACEHOLDER = "change-me"

# Settings the deployment relies on (some added alongside it): each must be a Settings field.
EXPECTED_SETTINGS = (
    "DSR_TEMPORAL_ADDRESS", "DSR_TEMPORAL_NAMESPACE", "DSR_TEMPORAL_RETENTION_DAYS",
    "DSR_TEMPORAL_TLS", "DSR_TEMPORAL_TLS_CA", "DSR_TEMPORAL_TLS_CERT", "DSR_TEMPORAL_TLS_KEY",
    "DSR_TEMPORAL_API_KEY", "DSR_METRICS_PORT", "DSR_METRICS_BIND_HOST",
    "DSR_WORKER_SHUTDOWN_GRACE_SECONDS", "DSR_DOWNLOAD_BIND_HOST", "DSR_DOWNLOAD_PORT",
    "DSR_PUBLIC_BASE_URL", "DSR_DATABASE_URL", "DSR_BLOB_URL", "DSR_PAYLOAD_KEYS",
    "DSR_PAYLOAD_KEY_FILE", "DSR_HMAC_KEY", "DSR_CODEC_PORT", "DSR_CODEC_BIND_HOST",
    "DSR_CODEC_ALLOWED_ORIGINS",
    "DSR_CODEC_PUBLIC_URL", "DSR_CODEC_OIDC_ISSUER", "DSR_CODEC_OIDC_AUDIENCE",
    "DSR_CODEC_OIDC_JWKS_URL", "DSR_CODEC_OIDC_ROLE_CLAIM", "DSR_CODEC_OIDC_READ_ROLES",
    "DSR_CODEC_OIDC_ENCODE_ROLES", "DSR_OFFICER_SERVICE_PORT", "DSR_OFFICER_SERVICE_BIND_HOST",
    "DSR_OFFICER_SERVICE_URL",
    "DSR_SMTP_HOST", "DSR_SMTP_PORT", "DSR_SMTP_USERNAME", "DSR_SMTP_PASSWORD",
    "DSR_SMTP_SECURITY", "DSR_DATA_DIR", "DSR_WEB_UI_URL",
    "DSR_TEMPORAL_TOKEN_URL", "DSR_TEMPORAL_TOKEN_CLIENT_ID", "DSR_TEMPORAL_TOKEN_CLIENT_SECRET",
    "DSR_TEMPORAL_TOKEN_SCOPE",
    "DSR_LEDGER_ANCHOR_URL", "DSR_LEDGER_ANCHOR_RETENTION_DAYS", "DSR_LEDGER_ANCHOR_MAX_AGE_HOURS",
)
# Read by dsr/settings.py itself, not fields.
NON_FIELD_NAMES = frozenset({"DSR_SETTINGS_FILE"})

# What each component cannot run correctly without, in a multi-container deployment.
TEMPORAL = frozenset({"DSR_TEMPORAL_ADDRESS", "DSR_TEMPORAL_NAMESPACE"})
WORKER = frozenset({
    "DSR_HMAC_KEY", "DSR_BLOB_URL", "DSR_DATA_DIR", "DSR_METRICS_PORT",
    "DSR_METRICS_BIND_HOST", "DSR_WORKER_SHUTDOWN_GRACE_SECONDS",
})
REQUIRED: dict[str, frozenset[str]] = {
    # Register and ledger (app database), the answer's package link, mail, shared blobs; the
    # ledger's anchors in a bucket (each container's own folder would hide them from the
    # officer service, which verifies: tests/test_ledger_anchors.py).
    "orchestrator": TEMPORAL | WORKER | {
        "DSR_DATABASE_URL", "DSR_PUBLIC_BASE_URL", "DSR_SMTP_HOST", "DSR_SMTP_PORT",
        "DSR_SENDER_ADDRESS", "DSR_OFFICER_ADDRESS", "DSR_LEDGER_ANCHOR_URL",
    },
    # Connectors use no app database; their stores are DSR_CONNECTOR_<NAME>_URL (below).
    "connectors": TEMPORAL | WORKER,
    # Officer sessions and the decode log are in the app database, session tokens keyed hashes.
    "codec": frozenset({
        "DSR_DATABASE_URL", "DSR_HMAC_KEY", "DSR_CODEC_PORT", "DSR_CODEC_BIND_HOST",
        "DSR_CODEC_ALLOWED_ORIGINS",
    }),
    "downloads": frozenset({
        "DSR_DATABASE_URL", "DSR_HMAC_KEY", "DSR_BLOB_URL", "DSR_PUBLIC_BASE_URL",
        "DSR_DOWNLOAD_PORT", "DSR_DOWNLOAD_BIND_HOST",
    }),
    # The directory and spent nonces in the app database; the authority from the server secret.
    "officers": TEMPORAL | {
        "DSR_DATABASE_URL", "DSR_HMAC_KEY", "DSR_OFFICER_SERVICE_PORT",
        "DSR_OFFICER_SERVICE_BIND_HOST", "DSR_LEDGER_ANCHOR_URL",
    },
    "migrate": frozenset({"DSR_DATABASE_URL"}),
    "setup": TEMPORAL,
    "cli": TEMPORAL | {"DSR_DATABASE_URL", "DSR_HMAC_KEY", "DSR_LEDGER_ANCHOR_URL"},
}
# One of DSR_PAYLOAD_KEYS / DSR_PAYLOAD_KEY_FILE: without, a key file would be generated in
# the container and lost with it.
NEEDS_PAYLOAD_KEYS = frozenset({"orchestrator", "connectors", "codec", "downloads", "officers",
                                "setup", "cli"})
# Kubernetes: officers sign in with OIDC, so the codec server checks bearer tokens (against
# the issuer's JWKS, the officer's roles in the role claim; its public address is https, so
# session cookies are Secure); connector stores are remote databases (the pods' filesystem is
# scratch).
# The Temporal frontend requires a client certificate and a bearer token
# (temporal-values.yaml): every pod that calls it presents both.
TEMPORAL_CLIENT = frozenset({
    "DSR_TEMPORAL_TLS_CA", "DSR_TEMPORAL_TLS_CERT", "DSR_TEMPORAL_TLS_KEY",
    "DSR_TEMPORAL_TOKEN_URL", "DSR_TEMPORAL_TOKEN_CLIENT_ID", "DSR_TEMPORAL_TOKEN_CLIENT_SECRET",
})
K8S_REQUIRED: dict[str, frozenset[str]] = {
    "codec": frozenset({
        "DSR_CODEC_OIDC_ISSUER", "DSR_CODEC_OIDC_AUDIENCE", "DSR_CODEC_OIDC_ROLE_CLAIM",
        "DSR_CODEC_PUBLIC_URL",
    }),
} | {kind: TEMPORAL_CLIENT for kind in TEMPORAL_CALLERS}
SHARED_VALUES = ("DSR_TEMPORAL_ADDRESS", "DSR_TEMPORAL_NAMESPACE", "DSR_BLOB_URL",
                 "DSR_PAYLOAD_KEYS", "DSR_HMAC_KEY", "DSR_DATABASE_URL", "DSR_LEDGER_ANCHOR_URL")

DSR_NAME = re.compile(r"\bDSR_[A-Z0-9_]+(?![<*A-Za-z0-9_])")
CONNECTOR_URL = re.compile(r"^DSR_CONNECTOR_([A-Z0-9_]+)_URL$")


def _yaml_files() -> list[Path]:
    return [p for p in _deploy_files() if p.suffix in (".yaml", ".yml")]


# The files parse ------------------------------------------------------------------------------


def test_deployment_files_exist() -> None:
    for path in (DOCKERFILE, DOCKERIGNORE, COMPOSE_FILE, COMPOSE_DIR / "dsr.env.example",
                 COMPOSE_DIR / "secrets.env.example", K8S_DIR / "temporal-values.yaml",
                 K8S_DIR / "alerts.yaml", DEPLOY / "README.md"):
        assert path.is_file(), f"missing {path.relative_to(ROOT)}"


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    docs = _load_all(path)
    assert docs, f"{path.name} holds no document"
    for doc in docs:
        assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"


def test_components_found() -> None:
    assert COMPONENTS_ERROR is None, f"reading the deployment failed: {COMPONENTS_ERROR}"
    kinds = {(c.environment, c.kind) for c in COMPONENTS}
    for environment in ("compose", "kubernetes"):
        for kind in ("orchestrator", "connectors", "codec", "downloads", "officers", "migrate",
                     "setup"):
            assert (environment, kind) in kinds, f"{environment} has no {kind}"
    assert "unknown" not in {c.kind for c in COMPONENTS}, [
        c.where for c in COMPONENTS if c.kind == "unknown"]


# Settings -------------------------------------------------------------------------------------


def _field_names() -> set[str]:
    return {f"DSR_{name.upper()}" for name in Settings.model_fields}


@pytest.mark.parametrize("name", EXPECTED_SETTINGS)
def test_expected_setting_exists(name: str) -> None:
    assert name in _field_names(), f"{name} is not a field of dsr.settings.Settings"


def _valid_name(name: str) -> bool:
    if name in _field_names() or name in NON_FIELD_NAMES:
        return True
    match = CONNECTOR_URL.match(name)
    return match is not None and match.group(1).lower() in BUILTIN


def test_every_dsr_name_in_deploy_is_a_setting() -> None:
    """Anywhere under deploy/ (env files, comments, manifests, Helm values, README) and in
    the Dockerfile: a name that is not a setting would be silently ignored."""
    unknown = []
    for path in [*_deploy_files(), DOCKERFILE]:
        for name in set(DSR_NAME.findall(path.read_text(encoding="utf-8"))):
            if not _valid_name(name):
                unknown.append(f"{path.relative_to(ROOT)}: {name}")
    assert not unknown, "not settings: " + ", ".join(sorted(unknown))


@pytest.mark.parametrize("component", COMPONENTS, ids=_ids(COMPONENTS))
def test_component_has_required_settings(component: Component) -> None:
    required = set(REQUIRED.get(component.kind, frozenset()))
    if component.environment == "kubernetes":
        required |= K8S_REQUIRED.get(component.kind, frozenset())
    missing = sorted(name for name in required if not component.env.get(name))
    if component.kind in NEEDS_PAYLOAD_KEYS and not (
            component.env.get("DSR_PAYLOAD_KEYS") or component.env.get("DSR_PAYLOAD_KEY_FILE")):
        missing.append("DSR_PAYLOAD_KEYS or DSR_PAYLOAD_KEY_FILE")
    assert not missing, f"{component.where} ({component.kind}) lacks {missing}"


@pytest.mark.parametrize("component", COMPONENTS, ids=_ids(COMPONENTS))
def test_connector_stores_are_configured(component: Component) -> None:
    """Compose keeps the reference stores in SQLite on a named volume at DSR_DATA_DIR; in
    Kubernetes the pod filesystem is scratch, so each served connector names its store."""
    if component.kind != "connectors":
        return
    if component.environment == "kubernetes":
        missing = [name for name in component.connectors
                   if not component.env.get(f"DSR_CONNECTOR_{name.upper()}_URL")]
        assert not missing, f"{component.where}: no store URL for {missing}"
    else:
        volumes = component.raw.get("volumes", [])
        data_dir = component.env["DSR_DATA_DIR"]
        named = {str(v).split(":")[1] for v in volumes
                 if not str(v).startswith((".", "/")) and ":" in str(v)}
        assert data_dir in named, f"{component.where}: {data_dir} is not on a named volume"


@pytest.mark.parametrize("component", COMPONENTS, ids=_ids(COMPONENTS))
def test_component_settings_validate(component: Component, monkeypatch: pytest.MonkeyPatch,
                                     tmp_path: Path) -> None:
    """The settings model accepts each component's environment as written, once the server
    secret's placeholder is replaced: left as it is, it is refused (payload keys are checked
    at start, not here)."""
    for name in list(os.environ):
        if name.startswith("DSR_"):
            monkeypatch.delenv(name)
    mounted = _secret_files(component)
    for name, value in component.env.items():
        if name.startswith("DSR_"):
            if value in mounted:  # a file setting (DSR_TEMPORAL_TLS_*): a stand-in file
                value = str(_stand_in(tmp_path, value))
            monkeypatch.setenv(name, value)
    if "DSR_HMAC_KEY" in component.env:
        with pytest.raises(ValidationError, match="hmac_key"):
            Settings(_env_file=None)  # type: ignore[call-arg]
        monkeypatch.setenv("DSR_HMAC_KEY", secrets.token_hex(32))
    Settings(_env_file=None)  # type: ignore[call-arg]


def _secret_files(component: Component) -> set[str]:
    """The files a Kubernetes container has from Secret volumes: mount path / each key of the
    Secret as secret.template.yaml defines it."""
    if component.environment != "kubernetes":
        return set()
    sources = _k8s_sources()
    volumes = {v["name"]: v["secret"]["secretName"]
               for v in component.raw["pod"].get("volumes", []) if "secret" in v}
    files = set()
    for mount in component.raw["container"].get("volumeMounts", []):
        if mount["name"] in volumes:
            keys = sources.get(("Secret", volumes[mount["name"]]))
            assert keys is not None, f"{component.where}: no Secret {volumes[mount['name']]}"
            files |= {f"{mount['mountPath']}/{key}" for key in keys}
    return files


def _stand_in(tmp_path: Path, path: str) -> Path:
    stand_in = tmp_path / path.lstrip("/")
    stand_in.parent.mkdir(parents=True, exist_ok=True)
    stand_in.write_text("stand-in for the mounted Secret key\n")
    return stand_in


@pytest.mark.parametrize("component", [c for c in COMPONENTS if c.environment == "kubernetes"],
                         ids=_ids([c for c in COMPONENTS if c.environment == "kubernetes"]))
def test_kubernetes_file_settings_are_mounted_secret_keys(component: Component) -> None:
    """A file setting (the client certificate, its key, the CA) names a key of a Secret that
    the container mounts: otherwise the settings refuse to start (no such file)."""
    mounted = _secret_files(component)
    for name in ("DSR_TEMPORAL_TLS_CA", "DSR_TEMPORAL_TLS_CERT", "DSR_TEMPORAL_TLS_KEY"):
        if name in component.env:
            assert component.env[name] in mounted, (
                f"{component.where}: {name}={component.env[name]} is not a mounted Secret key")


@pytest.mark.parametrize("environment", ["compose", "kubernetes"])
def test_components_share_cluster_keys_and_stores(environment: str) -> None:
    for name in SHARED_VALUES:
        values = {c.env[name] for c in COMPONENTS
                  if c.environment == environment and name in c.env}
        assert len(values) <= 1, f"{environment}: {name} differs between components: {values}"


# No secrets -----------------------------------------------------------------------------------

BASE64_KEY = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=(?![A-Za-z0-9+/=])")
HEX_KEY = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
URL_PASSWORD = re.compile(r"://[^/\s:@'\"]+:([^@\s/'\"]+)@")
SECRET_NAME = re.compile(
    r"(PASSWORD|PWD|SECRET|SECRET_KEY|SECRET_ACCESS_KEY|PAYLOAD_KEYS|HMAC_KEY|API_KEY|TOKEN)$",
    re.IGNORECASE)


def _is_placeholder(value: str) -> bool:
    return (not value or PLACEHOLDER in value or value.startswith("$")
            or value.startswith("/"))


def _secret_assignments(path: Path) -> Iterator[tuple[str, str]]:
    if path.name.endswith(".env.example"):
        yield from _env_file(path).items()
        return
    if path.suffix not in (".yaml", ".yml"):
        return
    for doc in _load_all(path):
        if doc.get("kind") == "Secret":
            for key, value in {**doc.get("stringData", {}), **doc.get("data", {})}.items():
                yield f"Secret {doc['metadata']['name']}/{key}", str(value)
        yield from _walk(doc)


def _walk(node: Any) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        if isinstance(node.get("name"), str) and "value" in node:
            yield node["name"], str(node["value"])
        for key, value in node.items():
            if isinstance(key, str) and isinstance(value, str | int) and (
                    key.isupper() or key in ("password", "secret")):
                yield key, str(value)
            else:
                yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


@pytest.mark.parametrize("path", [*_deploy_files(), DOCKERFILE],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_real_secret_committed(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not BASE64_KEY.search(text), f"{path.name}: looks like a base64 32-byte key"
    assert not HEX_KEY.search(text), f"{path.name}: looks like a hex 32-byte key"
    assert not PRIVATE_KEY.search(text), f"{path.name}: a private key"
    for password in URL_PASSWORD.findall(text):
        assert _is_placeholder(password), f"{path.name}: a password in a URL: {password[:3]}…"
    for name, value in _secret_assignments(path):
        if value in ("true", "false"):  # a flag such as TEMPORAL_CODEC_PASS_ACCESS_TOKEN
            continue
        if name.startswith("Secret ") or SECRET_NAME.search(name):
            assert _is_placeholder(value), f"{path.name}: {name} is not a placeholder"
