"""Duplicates: the same subject asking for the same right again within 30 days is shown to the
officer as a possible duplicate, linked to the first, matched by keyed hash in the register
(Temporal may no longer hold the first). The same request id twice starts one workflow."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsr.ledger import LedgerEntry
from tests.conftest import Harness, save_history
from tests.test_cli import cli, runs_of


async def _answered(h: Harness, days_ago: float, history: str | None = None,
                    **fields: object) -> str:
    received = datetime.now(UTC) - timedelta(days=days_ago)
    request = h.request(received_at=received.isoformat(), **fields)
    handle = await h.submit(request)
    await handle.result()
    if history:
        await save_history(handle, history)
    return request.request_id


async def test_the_same_subject_and_right_within_30_days_is_a_possible_duplicate(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    first = await _answered(h, days_ago=40)
    second = await _answered(h, days_ago=5)
    third = await _answered(h, days_ago=0, history="possible_duplicate")
    other_right = await _answered(h, days_ago=0, rights=["portability"])

    duplicates = {r: (await h.status(r)).possible_duplicate_of
                  for r in (first, second, third, other_right)}
    assert duplicates == {first: [], second: [], third: [second], other_right: []}, \
        "35 days apart is not a duplicate; another right is not either"
    with Session(h.engine) as session:
        received = session.scalars(select(LedgerEntry).where(
            LedgerEntry.kind == "received", LedgerEntry.request_id == third)).one()
    assert received.detail["possible_duplicate_of"] == [second]

    # The CLI says so when the officer submits it, and the JSON output links the first.
    again = h.request(request_id=third + "-AGAIN", channel="email", last_login_at=None)
    request_file = tmp_path / "again.json"
    request_file.write_text(again.model_dump_json())
    h.log_in_cli()
    code, out, err = await cli(h, "submit", "--file", str(request_file), "--json")
    assert code == 0, err
    assert json.loads(out)["possible_duplicate_of"] == [second, third]


async def test_the_same_request_submitted_twice_starts_one_workflow(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    request = h.request(channel="email", last_login_at=None)  # as an officer enters a letter
    request_file = tmp_path / "request.json"
    request_file.write_text(request.model_dump_json())
    h.log_in_cli()
    first = await cli(h, "submit", "--file", str(request_file))
    second = await cli(h, "submit", "--file", str(request_file))
    assert first[0] == 0, first[2]
    assert second[0] == 1 and f"request {request.request_id} was already submitted" in second[2]
    assert await runs_of(h, request.request_id) == 1
