"""A worker refuses to start on a bad policy file, naming the file, the entry and the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

import worker
from dsr.settings import POLICY_DIR

ROOT = Path(__file__).parents[1]
REGISTRY_FILE = ROOT / "connectors" / "registry.yaml"


def test_the_shipped_policies_pass_the_start_up_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsr.policies import check_policies
    from dsr.settings import Settings

    check_policies(Settings(data_dir=tmp_path))


def test_a_worker_refuses_to_start_on_a_bad_retention_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, policies)
    retention = policies / "retention.yaml"
    retention.write_text(retention.read_text().replace("period: {years: 10}",
                                                       "period: {decades: 1}", 1))
    monkeypatch.setenv("DSR_POLICY_DIR", str(policies))
    monkeypatch.setenv("DSR_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DSR_SETTINGS_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("DSR_TEMPORAL_ADDRESS", "127.0.0.1:9")  # never reached

    assert worker.main([]) == 2

    message = capsys.readouterr().err
    assert "refusing to start" in message and str(retention) in message
    assert "company-financial-records" in message and "period" in message


def test_a_worker_refuses_a_connector_category_the_catalogue_does_not_describe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = yaml.safe_load(REGISTRY_FILE.read_text())
    registry["connectors"].append({
        "name": "loyalty", "affiliate": "parent", "products": ["Loyalty"],
        "task_queue": "dsr-connector-loyalty", "role": "end_user", "identity_types": ["email"],
        "operations": ["discover", "erase"], "categories": ["loyalty_points"],
        "dataset": str(ROOT / "connectors" / "datasets" / "loyalty.yaml")})
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(registry))
    monkeypatch.setenv("DSR_CONNECTOR_REGISTRY", str(tmp_path / "registry.yaml"))
    monkeypatch.setenv("DSR_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DSR_SETTINGS_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("DSR_TEMPORAL_ADDRESS", "127.0.0.1:9")  # never reached

    assert worker.main([]) == 2

    message = capsys.readouterr().err
    assert "refusing to start" in message and "catalogue.yaml" in message
    assert "loyalty.loyalty_points" in message
