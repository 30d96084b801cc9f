"""Static checks of the cluster's authorization, network policies and images (issue 15).

Like tests/test_deploy.py (both read the files with tests/deploy_manifests.py), nothing here
talks to a cluster: no `helm template`, no API server, no CNI enforcing the policies. What is
checked is what an operator reviewing the files would check: the Helm values switch Temporal's
authorization on (mTLS required, the default JWT claim mapper and authorizer, a JWKS URI) with
every certificate from a mounted Secret; each NetworkPolicy selects pods the manifests really
run (the Temporal chart's pods by the labels its templates give them); what may talk to what
is exactly the table in deploy/README.md; and every image is pinned.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from dsr.metrics import bind_address
from tests.deploy_manifests import (
    DEPLOY,
    K8S_DIR,
    TEMPORAL_CALLERS,
    _compose,
    _helm_values,
    _k8s_components,
    _k8s_docs,
    _load_all,
    _pod_spec,
)

README = (DEPLOY / "README.md").read_text(encoding="utf-8")
DSR_POLICIES = K8S_DIR / "network-policies.yaml"
TEMPORAL_POLICIES = K8S_DIR / "temporal-network-policies.yaml"
RELEASE = "temporal"  # `helm install temporal ... -n temporal` (README)
PUBLIC_INGRESS, INTERNAL_INGRESS, MONITORING = "ingress-public", "ingress-internal", "monitoring"
NAMESPACE_LABEL = "kubernetes.io/metadata.name"
PROMETHEUS = f"{MONITORING}/prometheus"


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str  # app.kubernetes.io/name, or the chart's component
    labels: tuple[tuple[str, str], ...]

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def _kustomized() -> list[str]:
    data = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    return [str(r) for r in data["resources"]]


def _dsr_pods() -> list[Pod]:
    """The pods of this cluster's `dsr` namespace: the kustomization's and the Jobs'
    (connectors-affiliates.yaml runs in the affiliates' clusters)."""
    pods = []
    for name in [*_kustomized(), "jobs.yaml"]:
        for doc in _load_all(K8S_DIR / name):
            if _pod_spec(doc) is not None:
                labels = doc["spec"]["template"]["metadata"]["labels"]
                pods.append(Pod(doc["metadata"]["namespace"], labels["app.kubernetes.io/name"],
                                tuple(sorted(labels.items()))))
    return pods


def _temporal_pods() -> list[Pod]:
    """The chart's pods as its templates label them (temporal.resourceLabels of chart 0.72.0):
    name temporal, instance the release, component the service."""
    values = _helm_values()
    components = ["frontend", "history", "matching", "worker"]
    if values["server"].get("internalFrontend", {}).get("enabled"):
        components.append("internal-frontend")
    components += [c for c in ("web", "admintools") if values[c].get("enabled", True)]
    return [Pod(RELEASE, c, tuple(sorted({"app.kubernetes.io/name": "temporal",
                                          "app.kubernetes.io/instance": RELEASE,
                                          "app.kubernetes.io/component": c}.items())))
            for c in components]


def _pods(namespace: str) -> list[Pod]:
    return {"dsr": _dsr_pods(), RELEASE: _temporal_pods()}[namespace]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if not {"In": present and labels[key] in values,
                "NotIn": not present or labels[key] not in values,
                "Exists": present, "DoesNotExist": not present}[operator]:
            return False
    return True


def _selected(policy: dict[str, Any]) -> list[Pod]:
    namespace = policy["metadata"]["namespace"]
    return [pod for pod in _pods(namespace)
            if _selects(policy["spec"]["podSelector"], pod.label_map)]


def _peer(policy: dict[str, Any], peer: dict[str, Any]) -> list[str]:
    """Who a `from` entry admits: pods of a modelled namespace by name, `<namespace>/<app>`
    for pods elsewhere, or `<namespace>` for a whole namespace."""
    assert "ipBlock" not in peer, "an ipBlock: document and check it"
    if "namespaceSelector" in peer:
        selector = peer["namespaceSelector"]
        assert list(selector) == ["matchLabels"] and list(selector["matchLabels"]) == [
            NAMESPACE_LABEL], f"{policy['metadata']['name']}: namespaces by name only"
        namespace = selector["matchLabels"][NAMESPACE_LABEL]
    else:
        namespace = policy["metadata"]["namespace"]
    if "podSelector" not in peer:
        return [namespace]
    if namespace in ("dsr", RELEASE):
        pods = [p.name for p in _pods(namespace) if _selects(peer["podSelector"], p.label_map)]
        assert pods, f"{policy['metadata']['name']}: a `from` selects no pod of {namespace}"
        return pods
    return [f"{namespace}/{peer['podSelector']['matchLabels']['app.kubernetes.io/name']}"]


def _admitted(path: Any) -> dict[str, set[tuple[str, int | None]]]:
    """For each pod of the file's namespace: (source, port) pairs the policies admit."""
    admitted: dict[str, set[tuple[str, int | None]]] = {}
    for policy in _load_all(path):
        for pod in _selected(policy):
            admitted.setdefault(pod.name, set())
            for rule in policy["spec"].get("ingress", []):
                assert rule.get("from"), f"{policy['metadata']['name']}: a rule admits anyone"
                ports = [p["port"] for p in rule.get("ports", [])] or [None]
                admitted[pod.name] |= {(source, port) for peer in rule["from"]
                                       for source in _peer(policy, peer) for port in ports}
    return admitted


def _port(component_kind: str, setting: str) -> int:
    env = next(c for c in _k8s_components() if c.kind == component_kind).env
    return int(env[setting].rpartition(":")[2])


# Network policies ------------------------------------------------------------------------------


def test_the_dsr_policies_are_applied_with_the_kustomization_the_temporal_ones_apart() -> None:
    resources = _kustomized()
    assert DSR_POLICIES.name in resources
    assert TEMPORAL_POLICIES.name not in resources, "kustomize would move them into dsr"
    assert all((K8S_DIR / r).is_file() for r in resources)
    assert {d["metadata"]["namespace"] for d in _load_all(DSR_POLICIES)} == {"dsr"}
    assert {d["metadata"]["namespace"] for d in _load_all(TEMPORAL_POLICIES)} == {RELEASE}
    assert f"helm install {RELEASE} temporal/temporal -n {RELEASE}" in README


@pytest.mark.parametrize("path", [DSR_POLICIES, TEMPORAL_POLICIES], ids=lambda p: p.name)
def test_every_network_policy_selects_real_pods(path: Any) -> None:
    policies = _load_all(path)
    assert policies and all(p["kind"] == "NetworkPolicy" for p in policies)
    for policy in policies:
        assert _selected(policy), f"{policy['metadata']['name']} selects no pod"
        assert policy["spec"]["policyTypes"] == ["Ingress"]


@pytest.mark.parametrize("path", [DSR_POLICIES, TEMPORAL_POLICIES], ids=lambda p: p.name)
def test_ingress_is_denied_by_default(path: Any) -> None:
    deny = [p for p in _load_all(path) if p["spec"]["podSelector"] == {}
            and "Ingress" in p["spec"]["policyTypes"] and not p["spec"].get("ingress")]
    assert len(deny) == 1, f"{path.name}: no default-deny ingress policy"
    namespace = deny[0]["metadata"]["namespace"]
    assert {p.name for p in _selected(deny[0])} == {p.name for p in _pods(namespace)}


def test_only_the_download_server_is_admitted_from_the_public_ingress() -> None:
    admitted = _admitted(DSR_POLICIES)
    public = {pod for pod, sources in admitted.items()
              if any(source == PUBLIC_INGRESS for source, _ in sources)}
    assert public == {"dsr-download-server"}
    classes = {d["metadata"]["name"]: d["spec"]["ingressClassName"] for d in _k8s_docs()
               if d["kind"] == "Ingress"}
    assert classes == {"dsr-download-server": "public", "dsr-codec-server": "internal"}


def test_what_may_reach_the_dsr_pods_is_the_documented_table() -> None:
    metrics = _port("orchestrator", "DSR_METRICS_PORT")
    expected = {
        "dsr-download-server": {(PUBLIC_INGRESS, _port("downloads", "DSR_DOWNLOAD_PORT"))},
        "dsr-codec-server": {(INTERNAL_INGRESS, _port("codec", "DSR_CODEC_PORT"))},
        "dsr-officer-service": {(INTERNAL_INGRESS,
                                 _port("officers", "DSR_OFFICER_SERVICE_PORT"))},
        "dsr-orchestrator": {(PROMETHEUS, metrics)},
        "dsr-connectors": {(PROMETHEUS, metrics)},
        "dsr-migrate": set(),
        "dsr-setup": set(),
    }
    assert _admitted(DSR_POLICIES) == expected
    for pod, sources in expected.items():  # the README's table says the same
        row = next((line for line in README.splitlines() if line.startswith(f"| `{pod}`")), "")
        for source, port in sources:
            assert f"`{source}`" in row and str(port) in row, f"README: {pod} from {source}"


def test_only_the_pods_holding_a_temporal_token_reach_the_frontend() -> None:
    admitted = _admitted(TEMPORAL_POLICIES)
    in_release = {p.name for p in _temporal_pods()}
    callers = {c.raw["doc"]["metadata"]["name"] for c in _k8s_components()
               if c.kind in TEMPORAL_CALLERS and c.env.get("DSR_TEMPORAL_TOKEN_URL")}
    callers &= {p.name for p in _dsr_pods()}
    assert callers == {"dsr-orchestrator", "dsr-connectors", "dsr-officer-service", "dsr-setup"}
    grpc = _port("orchestrator", "DSR_TEMPORAL_ADDRESS")
    frontend = admitted["frontend"]
    assert {s for s, p in frontend if p == grpc} == callers  # None: every port
    assert {s for s, p in frontend if p is None} == in_release
    assert {(s, p) for s, p in frontend if p not in (grpc, None)} == {(PROMETHEUS, 9090)}
    # The internal frontend grants admin: Temporal's own pods only (and metrics scraping).
    assert {s for s, p in admitted["internal-frontend"] if p != 9090} == in_release
    assert {s for s, _ in admitted["web"]} - in_release == {INTERNAL_INGRESS}


def test_worker_metrics_bind_to_the_pod_ip_v4_or_v6() -> None:
    assert bind_address("10.244.1.17", 9464) == "10.244.1.17:9464"
    assert bind_address("fd00:10:244::17", 9464) == "[fd00:10:244::17]:9464"
    assert bind_address("127.0.0.1", 9464) == "127.0.0.1:9464"


def test_the_sdk_runtime_serves_metrics_on_an_ipv6_pod_address() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            port = probe.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback here")
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
        bind_address=bind_address("::1", port))))
    deadline = time.monotonic() + 5
    while True:  # the exporter starts on the runtime's own thread
        try:
            with urllib.request.urlopen(f"http://[::1]:{port}/metrics", timeout=5) as response:
                assert response.status == 200
                break
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    del runtime


# Temporal authorization ------------------------------------------------------------------------


def _secret_keys(namespace: str) -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {}
    for doc in _load_all(K8S_DIR / "secret.template.yaml"):
        if doc["metadata"]["namespace"] == namespace:
            keys[doc["metadata"]["name"]] = set(doc["stringData"])
    return keys


def _mounted(section: dict[str, Any]) -> set[str]:
    """Files a chart section's pods have from Secrets: mountPath/key."""
    volumes = {v["name"]: v["secret"]["secretName"] for v in section["additionalVolumes"]}
    secrets = _secret_keys(RELEASE)
    return {f"{m['mountPath']}/{key}" for m in section["additionalVolumeMounts"]
            for key in secrets[volumes[m["name"]]]}


def _tls_files(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [f for key, value in node.items() for f in (
            [value] if key in ("certFile", "keyFile") else
            list(value) if key in ("clientCaFiles", "rootCaFiles") else _tls_files(value))]
    return []


def test_helm_values_switch_authorization_on() -> None:
    config = _helm_values()["server"]["config"]
    authorization = config["authorization"]
    assert authorization["authorizer"] == "default"
    assert authorization["claimMapper"] == "default"
    assert authorization["permissionsClaimName"] == "permissions"
    assert authorization["audience"] == "temporal"  # the tokens of tests/test_temporal_token.py
    (jwks,) = authorization["jwtKeyProvider"]["keySourceURIs"]
    # The identity provider the codec server checks officers' tokens against.
    codec = next(c for c in _k8s_components() if c.kind == "codec").env
    assert jwks == codec["DSR_CODEC_OIDC_JWKS_URL"] and jwks.startswith("https://")
    frontend = config["tls"]["frontend"]["server"]
    assert frontend["requireClientAuth"] is True and frontend["clientCaFiles"]
    assert config["tls"]["internode"]["server"]["requireClientAuth"] is True
    # Temporal's system worker and namespace Job hold no token: the internal frontend.
    assert _helm_values()["server"]["internalFrontend"]["enabled"] is True


def test_every_certificate_the_chart_reads_is_a_mounted_secret_key() -> None:
    values = _helm_values()
    files = _tls_files(values["server"]["config"]["tls"])
    assert len(files) >= 6
    assert set(files) <= _mounted(values["server"]), set(files) - _mounted(values["server"])
    for section, prefix in (("web", "TEMPORAL_TLS_"), ("admintools", "TEMPORAL_TLS_CLIENT_")):
        env = {e["name"]: e.get("value") for e in values[section]["additionalEnv"]}
        paths = {v for k, v in env.items() if k.startswith("TEMPORAL_TLS_")
                 and str(v).startswith("/")}
        assert any(k.startswith(prefix) for k in env) and paths, section
        assert paths <= _mounted(values[section]), f"{section}: {paths - _mounted(values[section])}"


def test_the_workers_get_their_token_from_the_identity_provider_the_frontend_trusts() -> None:
    web = {e["name"]: e.get("value") for e in _helm_values()["web"]["additionalEnv"]}
    for component in _k8s_components():
        url = component.env.get("DSR_TEMPORAL_TOKEN_URL")
        if component.kind in TEMPORAL_CALLERS:
            assert url and url.startswith(f"{web['TEMPORAL_AUTH_ISSUER_URL']}/"), component.where
            assert component.env["DSR_TEMPORAL_TLS"] == "true"
        else:
            assert url is None, f"{component.where} does not call Temporal: no token"


def test_the_documented_permissions_are_in_temporals_format() -> None:
    """Temporal's default claim mapper reads `<namespace>:<read|write|worker|admin>` and
    ignores anything else (`dsr:writer` would grant nothing)."""
    namespace = next(c for c in _k8s_components() if c.kind == "orchestrator").env[
        "DSR_TEMPORAL_NAMESPACE"]
    section = README.split("## Temporal authorization", 1)[1].split("\n## ", 1)[0]
    permissions = re.findall(r"`(\w+:\w+)`", section)
    assert {"dsr:write", "dsr:read", "dsr:admin"} <= set(permissions)
    for permission in permissions:
        scope, _, role = permission.partition(":")
        assert scope == namespace and role in ("read", "write", "worker", "admin"), permission
    assert "dsr-workers" in section and "dsr-officer-service" in section


# Images ---------------------------------------------------------------------------------------


def _images() -> list[tuple[str, str]]:
    """(where, image) of every image reference under deploy/."""
    images = []
    for name, service in _compose()["services"].items():
        image = re.sub(r"\$\{[A-Z_]+:-([^}]+)\}", r"\1", str(service["image"]))
        images.append((f"compose:{name}", image))
    for doc in _k8s_docs():
        pod = _pod_spec(doc)
        for container in (pod or {}).get("containers", []) + (pod or {}).get("initContainers", []):
            images.append((f"{doc['kind']}/{doc['metadata']['name']}", str(container["image"])))
    values = _helm_values()
    for section in (values["server"], values["web"], values["admintools"]):
        image = section["image"]
        images.append((f"helm:{image['repository']}", f"{image['repository']}:{image['tag']}"))
    return images


def test_every_image_is_pinned_to_a_version() -> None:
    images = _images()
    assert len(images) >= 15
    for where, image in images:
        name, _, digest = image.partition("@")
        tag = name.rpartition("/")[2].partition(":")[2]
        assert tag or digest, f"{where}: {image} is untagged"
        assert tag != "latest", f"{where}: {image} is on latest"
        assert re.search(r"\d", tag) or tag == "local", f"{where}: {image} names no version"
    kustomize = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    assert all(i.get("newTag") not in (None, "latest") for i in kustomize["images"])


def test_temporal_images_are_the_versions_the_docs_name() -> None:
    values = _helm_values()
    server, ui = values["server"]["image"]["tag"], values["web"]["image"]["tag"]
    tools = values["admintools"]["image"]["tag"]
    services = _compose()["services"]
    assert services["temporal"]["image"] == f"temporalio/auto-setup:{server}"
    assert services["temporal-ui"]["image"] == f"temporalio/ui:{ui}"
    assert tools.startswith(f"{server}-")
    for version in (f"server {server}", f"UI {ui}", f"admin-tools {tools}"):
        assert version in README, f"deploy/README.md does not name {version}"
