"""Every recorded path's history replays against today's workflow code: a change that would
break running requests fails here (use workflow.patched for such changes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

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
    "possible_duplicate", "recipient_confirmed_by_officer",
}


def test_every_path_has_a_recorded_history() -> None:
    assert {path.stem for path in CURRENT} >= EXPECTED


@pytest.mark.parametrize("path", PATHS, ids=IDS)
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    # The recorded histories are saved decrypted (the test keys are new in every run), and
    # the product refuses plaintext: they replay through a converter only this test uses.
    replayer = Replayer(workflows=WORKFLOWS, data_converter=REPLAY_CONVERTER)
    await replayer.replay_workflow(history)


@pytest.mark.parametrize("path", CURRENT, ids=[p.stem for p in CURRENT])
def test_history_stays_within_its_bound(path: Path) -> None:
    events = len(json.loads(path.read_text())["events"])
    assert events <= EVENT_BOUNDS[path.stem], f"{path.stem}: {events} events"
