"""Static checks of the deployment files: the Dockerfile, deploy/compose and deploy/kubernetes.

Nothing here builds an image or starts a container (no container engine or cluster where the
suite runs). What can be checked without one is: the files parse; every ``DSR_*`` name they
use is a real setting and each component gets the settings it needs, with values the settings
model accepts; every command is one of the project's entry points; ports, probes and grace
periods agree with the settings; no secret is committed; the alert rules use known metrics.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import ValidationError

from connectors.builtin import BUILTIN
from dsr.connector_registry import load_registry
from dsr.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
K8S_DIR = DEPLOY / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S_IMAGE = "registry.example.internal/dsr-orchestrator"
COMPOSE_IMAGE = "${APP_IMAGE:-dsr-orchestrator:local}"
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

# The product's metrics as the workers export them (dsr/metrics.py, workflows/connectors.py;
# the SDK's Prometheus exporter adds no prefix or _total to them) and the Temporal Python
# SDK's own (Core SDK names, prefixed temporal_, exporter defaults: no unit suffix, no _total).
PRODUCT_METRICS = frozenset({
    "dsr_requests_open",
    "dsr_requests_overdue",
    "dsr_requests_due_this_week",
    "dsr_connector_failures",
    "dsr_connectors_missing",
})
ALERTED_PRODUCT_METRICS = PRODUCT_METRICS - {"dsr_requests_open"}
SDK_METRICS = frozenset({
    "temporal_workflow_task_schedule_to_start_latency",
    "temporal_activity_schedule_to_start_latency",
    "temporal_worker_task_slots_available",
    "temporal_worker_task_slots_used",
    "temporal_workflow_task_execution_failed",
    "temporal_activity_execution_failed",
    "temporal_long_request_failure",
    "temporal_request_failure",
    "temporal_num_pollers",
    "temporal_sticky_cache_size",
})
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")

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
TEMPORAL_CALLERS = frozenset({"orchestrator", "connectors", "officers", "setup"})
K8S_REQUIRED: dict[str, frozenset[str]] = {
    "codec": frozenset({
        "DSR_CODEC_OIDC_ISSUER", "DSR_CODEC_OIDC_AUDIENCE", "DSR_CODEC_OIDC_ROLE_CLAIM",
        "DSR_CODEC_PUBLIC_URL",
    }),
} | {kind: TEMPORAL_CLIENT for kind in TEMPORAL_CALLERS}
# What a pod's env takes from the downward API (fieldRef), for the settings checks: an example
# pod IP (the real one is the pod's; an IPv6 one is checked in test_deploy_network.py).
FIELD_REFS = {"status.podIP": "10.244.1.17"}
WORKER_KINDS = frozenset({"orchestrator", "connectors"})
SHARED_VALUES = ("DSR_TEMPORAL_ADDRESS", "DSR_TEMPORAL_NAMESPACE", "DSR_BLOB_URL",
                 "DSR_PAYLOAD_KEYS", "DSR_HMAC_KEY", "DSR_DATABASE_URL", "DSR_LEDGER_ANCHOR_URL")

DSR_NAME = re.compile(r"\bDSR_[A-Z0-9_]+(?![<*A-Za-z0-9_])")
CONNECTOR_URL = re.compile(r"^DSR_CONNECTOR_([A-Z0-9_]+)_URL$")


# Loading ---------------------------------------------------------------------------------------


def _deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file())


def _yaml_files() -> list[Path]:
    return [p for p in _deploy_files() if p.suffix in (".yaml", ".yml")]


def _load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
            if doc is not None]


def _env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as compose reads them (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _dockerfile_env() -> dict[str, str]:
    """DSR_* defaults set by the Dockerfile's ENV instructions."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for key, value in re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", line):
                env[key] = value
    return {k: v for k, v in env.items() if k.startswith("DSR_")}


def _dockerfile_cmd() -> list[str]:
    cmds = [line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
            if line.startswith("CMD ")]
    assert len(cmds) == 1, "the Dockerfile has exactly one CMD"
    command = json.loads(cmds[0][len("CMD "):])
    assert isinstance(command, list), "CMD in exec (JSON) form"
    return [str(part) for part in command]


@dataclass
class Component:
    where: str
    command: list[str]
    env: dict[str, str]
    environment: str  # "compose" or "kubernetes"
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return _kind(self.command)

    @property
    def connectors(self) -> list[str]:
        return _connectors(self.command)


def _kind(command: list[str]) -> str:
    if command[:2] == ["python", "worker.py"]:
        return "connectors" if "--connector" in command else "orchestrator"
    if command[:3] == ["python", "-m", "services.codec_server"]:
        return "codec"
    if command[:3] == ["python", "-m", "services.download_server"]:
        return "downloads"
    if command[:3] == ["python", "-m", "services.officer_service"]:
        return "officers"
    if command[:3] == ["python", "-m", "dsr.migrations"]:
        return "migrate"
    if command[:3] == ["python", "starter.py", "setup-cluster"]:
        return "setup"
    if command[:2] == ["python", "starter.py"]:
        return "cli"
    return "unknown"


def _connectors(command: list[str]) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command[:-1]) if arg == "--connector"]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _compose_env_files(service: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    files = service.get("env_file", [])
    for name in [files] if isinstance(files, str) else files:
        example = COMPOSE_DIR / f"{name}.example"
        assert example.is_file(), f"env_file {name} has no committed {example.name}"
        env.update(_env_file(example))
    return env


def _compose_components() -> list[Component]:
    components = []
    for name, service in _compose()["services"].items():
        if service.get("image") != COMPOSE_IMAGE:
            continue
        env = _dockerfile_env() | _compose_env_files(service)
        environment = service.get("environment", {})
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        env.update({k: str(v) for k, v in environment.items()})
        command = service.get("command") or _dockerfile_cmd()
        components.append(Component(f"compose:{name}", [str(c) for c in command], env,
                                    "compose", service))
    return components


def _k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        if path.name in ("temporal-values.yaml", "kustomization.yaml"):
            continue
        docs += [doc for doc in _load_all(path) if isinstance(doc, dict) and "kind" in doc]
    return docs


def _k8s_sources() -> dict[tuple[str, str], dict[str, str]]:
    """(kind, name) of every ConfigMap and Secret with its data."""
    sources = {}
    for doc in _k8s_docs():
        if doc["kind"] == "ConfigMap":
            sources[("ConfigMap", doc["metadata"]["name"])] = dict(doc.get("data", {}))
        elif doc["kind"] == "Secret":
            sources[("Secret", doc["metadata"]["name"])] = dict(doc.get("stringData", {}))
    return sources


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        spec: dict[str, Any] = doc["spec"]["template"]["spec"]
        return spec
    return None


def _k8s_components() -> list[Component]:
    sources = _k8s_sources()
    components = []
    for doc in _k8s_docs():
        pod = _pod_spec(doc)
        if pod is None:
            continue
        for container in pod["containers"]:
            if not str(container["image"]).startswith(K8S_IMAGE):
                continue
            where = f"kubernetes:{doc['kind']}/{doc['metadata']['name']}/{container['name']}"
            env = _dockerfile_env()
            for ref in container.get("envFrom", []):
                kind, body = (("ConfigMap", ref["configMapRef"]) if "configMapRef" in ref
                              else ("Secret", ref["secretRef"]))
                assert (kind, body["name"]) in sources, f"{where}: no {kind} {body['name']}"
                env.update(sources[(kind, body["name"])])
            for item in container.get("env", []):
                if "value" in item:
                    env[item["name"]] = str(item["value"])
                elif "fieldRef" in item["valueFrom"]:
                    path = item["valueFrom"]["fieldRef"]["fieldPath"]
                    assert path in FIELD_REFS, f"{where}: {item['name']} from {path}"
                    env[item["name"]] = FIELD_REFS[path]
                else:
                    ref = item["valueFrom"]["secretKeyRef"]
                    data = sources.get(("Secret", ref["name"]))
                    assert data is not None and ref["key"] in data, (
                        f"{where}: {item['name']} refers to a missing Secret key {ref}")
                    env[item["name"]] = data[ref["key"]]
            command = container.get("command") or _dockerfile_cmd()
            components.append(Component(where, [str(c) for c in command] +
                                        [str(a) for a in container.get("args", [])],
                                        env, "kubernetes",
                                        {"doc": doc, "pod": pod, "container": container}))
    return components


def _components() -> list[Component]:
    return _compose_components() + _k8s_components()


def _ids(components: list[Component]) -> list[str]:
    return [c.where for c in components]


def _components_or_error() -> tuple[list[Component], str | None]:
    # Collected at import for parametrisation: a broken file must fail a test, not collection.
    try:
        return _components(), None
    except Exception as error:
        return [], f"{type(error).__name__}: {error}"


COMPONENTS, COMPONENTS_ERROR = _components_or_error()


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


# Commands -------------------------------------------------------------------------------------


def _starter_commands() -> Any:
    import starter

    return typer.main.get_command(starter.app)


def _check_entry_point(command: list[str]) -> None:
    assert command[0] == "python", f"{command}: run with the image's python"
    if command[1] == "worker.py":
        flags = command[2:]
        assert flags.count("--all") <= 1
        rest = [f for f in flags if f != "--all"]
        assert len(rest) % 2 == 0, f"{command}: --connector takes a name"
        for flag, name in zip(rest[::2], rest[1::2], strict=True):
            assert flag == "--connector", f"{command}: unknown worker flag {flag}"
            assert name in BUILTIN, f"{command}: {name} is not a built-in connector"
        assert len(set(rest[1::2])) == len(rest[1::2]), f"{command}: a connector twice"
    elif command[1] == "starter.py":
        group = _starter_commands()
        path = [arg for arg in command[2:] if not arg.startswith("-")]
        for word in path:
            commands = getattr(group, "commands", None)
            if commands is None:
                break  # the rest are the command's own arguments
            assert word in commands, f"{command}: starter.py has no command {word!r}"
            group = commands[word]
    elif command[1] == "-m":
        module = command[2]
        assert module in ("services.codec_server", "services.download_server",
                          "services.officer_service", "dsr.migrations"), (
            f"{command}: not an entry point")
        assert find_spec(module) is not None, f"{command}: no module {module}"
        if module == "dsr.migrations":
            assert command[3:] == ["upgrade"], f"{command}: migrations run `upgrade`"
        else:
            assert command[3:] == [], f"{command}: {module} takes no arguments"
    else:
        raise AssertionError(f"{command}: not an entry point of the project")


@pytest.mark.parametrize("component", COMPONENTS, ids=_ids(COMPONENTS))
def test_command_is_an_entry_point(component: Component) -> None:
    _check_entry_point(component.command)


def test_dockerfile_cmd_is_the_orchestrator_worker() -> None:
    command = _dockerfile_cmd()
    _check_entry_point(command)
    assert _kind(command) == "orchestrator"


def test_every_connector_is_served() -> None:
    registry = load_registry(Settings(_env_file=None).connector_registry)  # type: ignore[call-arg]
    with_queue = {name for name in BUILTIN if registry.get(name).task_queue is not None}
    for environment in ("compose", "kubernetes"):
        served = [name for c in COMPONENTS if c.environment == environment
                  for name in c.connectors]
        assert set(served) == with_queue, f"{environment}: served {sorted(served)}"


# Ports, probes, grace periods -----------------------------------------------------------------


def _socket_port(test: list[str] | str) -> int:
    text = " ".join(test) if isinstance(test, list) else test
    match = re.search(r"create_connection\(\('127\.0\.0\.1', (\d+)\)", text)
    assert match, f"no port in {text!r}"
    return int(match.group(1))


def _published(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) of "host:hostport:containerport" entries."""
    pairs = []
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        pairs.append((int(parts[-2]), int(parts[-1])))
    return pairs


def _duration_seconds(text: str) -> float:
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text):
        total += float(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def _grace(component: Component) -> float:
    value = component.env.get("DSR_WORKER_SHUTDOWN_GRACE_SECONDS")
    default = Settings.model_fields["worker_shutdown_grace_seconds"].default
    return float(value) if value else float(default)


def test_compose_ports_match_settings() -> None:
    compose = _compose()
    services = compose["services"]
    by_name = {c.where.split(":", 1)[1]: c for c in _compose_components()}
    for name, component in by_name.items():
        env, service = component.env, component.raw
        if component.kind in WORKER_KINDS:
            assert _socket_port(service["healthcheck"]["test"]) == int(env["DSR_METRICS_PORT"])
            assert env["DSR_METRICS_BIND_HOST"] == "0.0.0.0", f"{name}: metrics unreachable"
        if component.kind in ("downloads", "officers"):
            prefix = "DSR_DOWNLOAD" if component.kind == "downloads" else "DSR_OFFICER_SERVICE"
            port = int(env[f"{prefix}_PORT"])
            assert _socket_port(service["healthcheck"]["test"]) == port
            assert [c for _, c in _published(service)] == [port]
            assert env[f"{prefix}_BIND_HOST"] == "0.0.0.0"
        if component.kind == "codec":
            port = int(env["DSR_CODEC_PORT"])
            assert _socket_port(service["healthcheck"]["test"]) == port
            assert env["DSR_CODEC_BIND_HOST"] == "0.0.0.0", f"{name}: codec unreachable"
            # The session links and the Web UI use localhost:DSR_CODEC_PORT.
            assert _published(service) == [(port, port)]
            ui = services["temporal-ui"]["environment"]
            assert ui["TEMPORAL_CODEC_ENDPOINT"] == f"http://localhost:{port}"
            assert str(ui["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"]) == "true"
            origin = f"http://localhost:{services['temporal-ui']['ports'][0].split(':')[-2]}"
            assert origin in json.loads(env["DSR_CODEC_ALLOWED_ORIGINS"])
            assert env["DSR_WEB_UI_URL"] == origin


def test_compose_stop_grace_exceeds_worker_shutdown_grace() -> None:
    for component in _compose_components():
        if component.kind in WORKER_KINDS:
            period = _duration_seconds(str(component.raw.get("stop_grace_period", "10s")))
            assert period > _grace(component) + 5, (
                f"{component.where}: stop_grace_period {period}s <= grace + margin")


def test_compose_workers_wait_for_the_one_shot_jobs() -> None:
    services = _compose()["services"]
    migrate = next(n for n, s in services.items()
                   if _kind([str(c) for c in s.get("command", [])]) == "migrate")
    setup = next(n for n, s in services.items()
                 if _kind([str(c) for c in s.get("command", [])]) == "setup")
    assert services[migrate].get("restart") == "no" and services[setup].get("restart") == "no"
    for component in _compose_components():
        if component.kind in WORKER_KINDS:
            depends = component.raw["depends_on"]
            for job in (migrate, setup):
                assert depends[job]["condition"] == "service_completed_successfully", (
                    f"{component.where} must wait for {job}")
    orchestrator = next(c for c in _compose_components() if c.kind == "orchestrator")
    assert orchestrator.raw["deploy"]["replicas"] >= 2


def test_compose_temporal_namespace_matches_settings() -> None:
    services = _compose()["services"]
    env = next(c for c in _compose_components() if c.kind == "orchestrator").env
    temporal = services["temporal"]["environment"]
    assert temporal["DEFAULT_NAMESPACE"] == env["DSR_TEMPORAL_NAMESPACE"]
    assert _duration_seconds(temporal["DEFAULT_NAMESPACE_RETENTION"]) == (
        int(env["DSR_TEMPORAL_RETENTION_DAYS"]) * 86400)
    assert env["DSR_TEMPORAL_ADDRESS"] == "temporal:7233"


def _probe_ports(container: dict[str, Any]) -> list[int]:
    ports = []
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        spec = container.get(probe)
        if spec is None:
            continue
        if "tcpSocket" in spec:
            ports.append(int(spec["tcpSocket"]["port"]))
        elif "httpGet" in spec:
            ports.append(int(spec["httpGet"]["port"]))
        else:
            ports.append(_socket_port(spec["exec"]["command"]))
    return ports


def _services_for(pod_labels: dict[str, str]) -> list[dict[str, Any]]:
    return [doc for doc in _k8s_docs() if doc["kind"] == "Service"
            and all(pod_labels.get(k) == v for k, v in doc["spec"]["selector"].items())]


def test_kubernetes_ports_probes_and_scraping_match_settings() -> None:
    for component in _k8s_components():
        doc, pod, container = (component.raw[k] for k in ("doc", "pod", "container"))
        env = component.env
        if doc["kind"] == "Job":
            continue
        probes = _probe_ports(container)
        assert len(probes) >= 2, f"{component.where}: readiness and liveness probes"
        labels = doc["spec"]["template"]["metadata"]["labels"]
        if component.kind in WORKER_KINDS:
            port = int(env["DSR_METRICS_PORT"])
            # The pod's own address (the kubelet probes it; NetworkPolicy admits Prometheus).
            bind = {e["name"]: e for e in container.get("env", [])}["DSR_METRICS_BIND_HOST"]
            assert bind["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP", component.where
            assert set(probes) == {port}, component.where
            assert [p["containerPort"] for p in container["ports"]] == [port]
            annotations = doc["spec"]["template"]["metadata"]["annotations"]
            assert annotations["prometheus.io/scrape"] == "true"
            assert int(annotations["prometheus.io/port"]) == port
        elif component.kind in ("downloads", "officers"):
            prefix = "DSR_DOWNLOAD" if component.kind == "downloads" else "DSR_OFFICER_SERVICE"
            port = int(env[f"{prefix}_PORT"])
            assert env[f"{prefix}_BIND_HOST"] == "0.0.0.0"
            assert set(probes) == {port}
            assert [p["containerPort"] for p in container["ports"]] == [port]
            (service,) = _services_for(labels)
            assert [p["targetPort"] for p in service["spec"]["ports"]] == [port]
        elif component.kind == "codec":
            port = int(env["DSR_CODEC_PORT"])
            assert env["DSR_CODEC_BIND_HOST"] == "0.0.0.0"
            assert pod["containers"] == [container], f"{component.where}: no sidecar needed"
            assert set(probes) == {port}
            assert [p["containerPort"] for p in container["ports"]] == [port]
            (service,) = _services_for(labels)
            assert [p["targetPort"] for p in service["spec"]["ports"]] == [port]
        else:
            raise AssertionError(f"{component.where}: unexpected long-running {component.kind}")


def test_kubernetes_grace_and_security_context() -> None:
    for component in _k8s_components():
        pod, container = component.raw["pod"], component.raw["container"]
        if component.kind in WORKER_KINDS:
            assert pod["terminationGracePeriodSeconds"] > _grace(component) + 5, component.where
        assert pod["securityContext"]["runAsNonRoot"] is True, component.where
        assert pod["securityContext"]["runAsUser"] != 0
        for each in pod["containers"]:
            context = each["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, f"{component.where}/{each['name']}"
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "limits" in each["resources"] and "requests" in each["resources"]
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert {"/tmp", component.env["DSR_DATA_DIR"]} <= mounts, (
            f"{component.where}: writable /tmp and DSR_DATA_DIR on a read-only root")


def test_kubernetes_orchestrator_scaling_objects() -> None:
    docs = _k8s_docs()
    orchestrator = next(c for c in _k8s_components() if c.kind == "orchestrator")
    name = orchestrator.raw["doc"]["metadata"]["name"]
    labels = orchestrator.raw["doc"]["spec"]["template"]["metadata"]["labels"]
    hpa = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"
           and d["spec"]["scaleTargetRef"]["name"] == name]
    assert len(hpa) == 1 and hpa[0]["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    pdb = [d for d in docs if d["kind"] == "PodDisruptionBudget"
           and all(labels.get(k) == v
                   for k, v in d["spec"]["selector"]["matchLabels"].items())]
    assert len(pdb) == 1


def _helm_values() -> dict[str, Any]:
    data = yaml.safe_load((K8S_DIR / "temporal-values.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_helm_values_postgres_namespace_and_web_ui() -> None:
    values = _helm_values()
    persistence = values["server"]["config"]["persistence"]
    for store in ("default", "visibility"):
        assert persistence[store]["driver"] == "sql"
        assert persistence[store]["sql"]["driver"] == "postgres12"
        assert persistence[store]["sql"].get("existingSecret"), "password from a Secret"
    assert values["schema"]["setup"]["enabled"] is True
    assert values["cassandra"]["enabled"] is False
    assert values["elasticsearch"]["enabled"] is False
    env = next(c for c in _k8s_components() if c.kind == "orchestrator").env
    (namespace,) = values["server"]["config"]["namespaces"]["namespace"]
    assert namespace["name"] == env["DSR_TEMPORAL_NAMESPACE"]
    assert _duration_seconds(namespace["retention"].replace("d", "h")) == (
        int(env["DSR_TEMPORAL_RETENTION_DAYS"]) * 3600)
    web: dict[str, Any] = {e["name"]: e for e in values["web"]["additionalEnv"]}
    assert web["TEMPORAL_AUTH_ENABLED"]["value"] == "true"
    assert web["TEMPORAL_CODEC_PASS_ACCESS_TOKEN"]["value"] == "true"
    for name in ("TEMPORAL_AUTH_CLIENT_ID", "TEMPORAL_AUTH_CLIENT_SECRET"):
        assert "secretKeyRef" in web[name]["valueFrom"], f"{name} from a Secret"
    assert web["TEMPORAL_AUTH_PROVIDER_URL"]["value"]
    codec_env = next(c for c in _k8s_components() if c.kind == "codec").env
    ui_origin = f"https://{values['web']['ingress']['hosts'][0]}"
    assert json.loads(codec_env["DSR_CODEC_ALLOWED_ORIGINS"]) == [ui_origin]
    codec_hosts = {rule["host"] for doc in _k8s_docs() if doc["kind"] == "Ingress"
                   and doc["metadata"]["name"] == "dsr-codec-server"
                   for rule in doc["spec"]["rules"]}
    assert web["TEMPORAL_CODEC_ENDPOINT"]["value"] in {f"https://{h}" for h in codec_hosts}
    # The codec server knows its https address (session links, Secure cookies), and the
    # issuer it checks tokens of is the one the Web UI signs officers in with.
    assert codec_env["DSR_CODEC_PUBLIC_URL"] == web["TEMPORAL_CODEC_ENDPOINT"]["value"]
    assert codec_env["DSR_CODEC_OIDC_ISSUER"] == web["TEMPORAL_AUTH_ISSUER_URL"]["value"]


def test_dockerfile_and_dockerignore() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.M)
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}$", text, re.M), "final stage on the slim base"
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root"), "runs as non-root"
    installs = re.findall(r"pip install (.+?)(?:\s*\\|$)", text, re.M)
    assert installs == ["."], f"installs the project only, without extras: {installs}"
    exposed = {int(p) for line in re.findall(r"^EXPOSE (.+)$", text, re.M) for p in line.split()}
    env = next(c for c in _compose_components() if c.kind == "orchestrator").env
    assert {int(env["DSR_CODEC_PORT"]), int(env["DSR_DOWNLOAD_PORT"]),
            int(env["DSR_METRICS_PORT"])} <= exposed
    ignored = set(DOCKERIGNORE.read_text(encoding="utf-8").split())
    assert {".git", ".venv", "var", "tests"} <= ignored


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


# Alerts ---------------------------------------------------------------------------------------


def _alert_rules() -> list[dict[str, Any]]:
    (doc,) = _load_all(K8S_DIR / "alerts.yaml")
    assert doc["kind"] == "PrometheusRule"
    return [rule for group in doc["spec"]["groups"] for rule in group["rules"]]


def _known_metric(name: str) -> bool:
    if name in PRODUCT_METRICS or name in SDK_METRICS:
        return True
    return any(name.endswith(s) and name[: -len(s)] in SDK_METRICS for s in HISTOGRAM_SUFFIXES)


def test_alert_rules_use_known_metrics() -> None:
    rules = _alert_rules()
    used: set[str] = set()
    for rule in rules:
        names = set(re.findall(r"\b((?:dsr|temporal)_[a-z0-9_]+)\b", rule["expr"]))
        assert names, f"{rule['alert']}: uses no product or SDK metric"
        unknown = [n for n in names if not _known_metric(n)]
        assert not unknown, f"{rule['alert']}: unknown metrics {unknown}"
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        used |= names
    assert used >= ALERTED_PRODUCT_METRICS, (
        f"no alert on {sorted(ALERTED_PRODUCT_METRICS - used)}")
    by_name = {rule["alert"]: rule for rule in rules}
    assert "jurisdiction" in by_name["DsrRequestsOverdue"]["expr"]
    assert "connector" in by_name["DsrConnectorFailing"]["expr"]


def test_product_metric_names_are_in_the_product() -> None:
    """The constant mirrors the code: each name (or its f-string stem) is in the source."""
    source = "".join(path.read_text(encoding="utf-8") for folder in ("dsr", "workflows")
                     for path in (ROOT / folder).rglob("*.py"))
    for name in PRODUCT_METRICS:
        stem = "dsr_requests_{name}" if name.startswith("dsr_requests_") else name
        assert f'"{name}"' in source or stem in source, f"{name} is not exported by the product"


def test_dockerfile_ships_the_migrations() -> None:
    """dsr.migrations looks for the Alembic scripts beside the installed packages; when they
    are outside the packaged folders, the Dockerfile must copy them there."""
    from dsr import migrations

    folder = Path(migrations.MIGRATIONS_DIR).resolve()
    assert (folder / "versions").is_dir()
    relative = folder.relative_to(ROOT)
    packaged = ("dsr", "workflows", "activities", "connectors")
    if relative.parts[0] not in packaged:
        text = DOCKERFILE.read_text(encoding="utf-8")
        assert f"COPY {relative}/ " in text and "purelib" in text, (
            f"the image lacks {relative}/ beside the installed packages")
    ignored = DOCKERIGNORE.read_text(encoding="utf-8").split()
    assert relative.parts[0] not in ignored
