"""deploy/compose: ports, healthchecks, stop grace periods and start order agree with the
settings, and Temporal's namespace with the workers'."""

from __future__ import annotations

import json
from typing import Any

from tests.deploy_manifests import (
    WORKER_KINDS,
    _compose,
    _compose_components,
    _duration_seconds,
    _grace,
    _kind,
    _socket_port,
)


def _published(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) of "host:hostport:containerport" entries."""
    pairs = []
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        pairs.append((int(parts[-2]), int(parts[-1])))
    return pairs


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
