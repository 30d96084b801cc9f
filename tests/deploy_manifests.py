"""The deployment's files as the tests under tests/test_deploy*.py read them: the Dockerfile,
deploy/compose and deploy/kubernetes, loaded into the components they run.

Nothing here builds an image or starts a container (no container engine or cluster where the
suite runs). What can be checked without one is: the files parse; every ``DSR_*`` name they
use is a real setting and each component gets the settings it needs, with values the settings
model accepts; every command is one of the project's entry points; ports, probes and grace
periods agree with the settings; no secret is committed; the alert rules use known metrics.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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

# The components that call the Temporal frontend: each presents a client certificate and a
# bearer token (temporal-values.yaml).
TEMPORAL_CALLERS = frozenset({"orchestrator", "connectors", "officers", "setup"})
# What a pod's env takes from the downward API (fieldRef), for the settings checks: an example
# pod IP (the real one is the pod's; an IPv6 one is checked in test_deploy_network.py).
FIELD_REFS = {"status.podIP": "10.244.1.17"}
WORKER_KINDS = frozenset({"orchestrator", "connectors"})


# Loading ---------------------------------------------------------------------------------------


def _deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file())


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


# Shared by the checks of compose and Kubernetes ----------------------------------------------


def _socket_port(test: list[str] | str) -> int:
    text = " ".join(test) if isinstance(test, list) else test
    match = re.search(r"create_connection\(\('127\.0\.0\.1', (\d+)\)", text)
    assert match, f"no port in {text!r}"
    return int(match.group(1))


def _duration_seconds(text: str) -> float:
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text):
        total += float(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def _grace(component: Component) -> float:
    value = component.env.get("DSR_WORKER_SHUTDOWN_GRACE_SECONDS")
    default = Settings.model_fields["worker_shutdown_grace_seconds"].default
    return float(value) if value else float(default)


def _helm_values() -> dict[str, Any]:
    data = yaml.safe_load((K8S_DIR / "temporal-values.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data
