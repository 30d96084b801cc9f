"""Every recorded path's history replays against today's workflow code: a change that would
break running requests fails here (use workflow.patched for such changes)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from services import workflow_client as officer
from tests.conftest import EVENT_BOUNDS, REPLAY_CONVERTER
from worker import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"
# Today's recordings, and in folders named for a patch, the recordings made before it: the
# requests still running on the old code must replay too.
CURRENT = sorted(HISTORIES.glob("*.json"))
PATHS = CURRENT + sorted(HISTORIES.glob("before_*/*.json"))
IDS = [str(path.relative_to(HISTORIES).with_suffix("")) for path in PATHS]
EXPECTED = {
    "access_panel_verified", "controller_erasure_code_verified",
    "verification_locked_then_new_code", "extended", "denied",
    "cancelled_after_partial_execution", "connector_done_by_hand", "california_opt_out",
    "unverified", "overdue_then_approved", "clarification_uk_clock_stopped", "clarification_eu",
    "connector_missing_then_back", "referred_to_controllers", "recipient_instructed_and_confirmed",
    "held_then_deferred", "deferred_erasure_after_duty", "retention_sweep",
    "possible_duplicate", "recipient_confirmed_by_officer", "ledger_anchored",
    "answer_held_for_review", "uk_period_from_verification", "retention_draft_left_out",
    "child_erasure_reviewed",
}


def test_every_path_has_a_recorded_history() -> None:
    assert {path.stem for path in CURRENT} >= EXPECTED


def workflow_id(recorded: dict[str, Any], name: str) -> str:
    """The id the workflow ran under (officers' assertions name it): recorded by the dev
    server; on the time-skipping server, a request's is its request id's."""
    started = recorded["events"][0]["workflowExecutionStartedEventAttributes"]
    if "workflowId" in started:
        return str(started["workflowId"])
    if started["workflowType"]["name"] != "RightsRequest":
        return name
    start = json.loads(base64.b64decode(started["input"]["payloads"][0]["data"]))
    return officer.workflow_id(start["request"]["request_id"])


@pytest.mark.parametrize("path", PATHS, ids=IDS)
async def test_history_replays(path: Path) -> None:
    recorded = json.loads(path.read_text())
    history = WorkflowHistory.from_json(workflow_id(recorded, path.stem), recorded)
    # The recorded histories are saved decrypted (the test keys are new in every run), and
    # the product refuses plaintext: they replay through a converter only this test uses.
    # In the namespace they ran in: an officer's assertion is bound to it.
    replayer = Replayer(workflows=WORKFLOWS, data_converter=REPLAY_CONVERTER,
                        namespace="default")
    await replayer.replay_workflow(history)


@pytest.mark.parametrize("path", CURRENT, ids=[p.stem for p in CURRENT])
def test_history_stays_within_its_bound(path: Path) -> None:
    events = len(json.loads(path.read_text())["events"])
    assert events <= EVENT_BOUNDS[path.stem], f"{path.stem}: {events} events"
