"""A worker refuses to start on a bad policy file, naming the file, the entry and the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import worker
from dsr.settings import POLICY_DIR


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
