"""deploy/kubernetes: ports, probes, scraping, grace periods, security contexts and scaling agree
with the settings; the Temporal Helm values with the namespace, retention and codec endpoint."""

from __future__ import annotations

import json
from typing import Any

from tests.deploy_manifests import (
    WORKER_KINDS,
    _duration_seconds,
    _grace,
    _helm_values,
    _k8s_components,
    _k8s_docs,
    _socket_port,
)


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
