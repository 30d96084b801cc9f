"""The alert rules (deploy/kubernetes/alerts.yaml) use only metrics the product (dsr/metrics.py,
workflows/connectors.py) and the Temporal SDK export."""

from __future__ import annotations

import re
from typing import Any

from tests.deploy_manifests import K8S_DIR, ROOT, _load_all

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
