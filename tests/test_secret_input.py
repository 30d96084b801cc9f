"""Identities and codes from a file or stdin (cli/secret_input.py): the CLI reading both on
stdin in its own process, against real workers; what is read, and that a refusal never
repeats a value. The refusals at the CLI are in tests/bad_inputs.yaml."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from cli import secret_input
from cli.secret_input import SecretInputError, one_time_code, with_identities_file
from dsr.status import Status
from services import workflow_client as officer
from tests.conftest import Harness
from tests.test_cli import cli, emailed_code, new_id
from workflows.models import RequestOutcome

EMAIL = "ana.silva@example.com"


async def test_identities_and_the_code_on_stdin_stay_out_of_the_process_list(
        harness: Harness) -> None:
    """``submit --identities-file -`` and ``verify --code-file -``: what ps shows of either
    process (its argv) holds no identity and no code."""
    h, facts = harness, harness.facts
    h.log_in_cli()
    rid = new_id("CLI-STDIN")
    submit = ["submit", "--right", "erasure", "--channel", "email", "--requester", "controller",
              "--customer-account", facts.controller_account_id, "--request-id", rid,
              "--identities-file", "-"]
    lines = (f"# the end user, and the controller's address for the answer\n"
             f"phone:{facts.end_user_phone}\r\n"
             f"requester-email: {facts.controller_registered_email}\n")
    code, out, err = await cli(h, *submit, stdin=lines.encode())
    assert code == 0, err
    assert out.strip() == f"submitted {rid} (workflow dsr-{rid})"
    emailed = await emailed_code(h, rid)  # sent to the registered address the file named
    verify = ["verify", rid, "--code-file", "-"]
    code, out, err = await cli(h, *verify, stdin=f"{emailed}\n".encode())
    assert code == 0, err
    assert out.strip() == f"{rid}: code accepted; 0 identities still to verify"
    handle = h.client.get_workflow_handle(officer.workflow_id(rid), result_type=RequestOutcome)
    assert (await handle.result()).status is Status.ANSWERED
    shown = " ".join([sys.executable, "starter.py", *submit, sys.executable, "starter.py",
                      *verify])
    for secret in (facts.end_user_phone, facts.end_user_phone.lstrip("+"),
                   facts.controller_registered_email, emailed):
        assert secret not in shown


def test_type_value_lines_add_to_the_flags(tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("# Ana, by phone and WhatsApp\r\n\nphone: +31612345678\r\n"
                   "  Channel-ID:whatsapp:31612345678\naccount-id:acct-7781\n"
                   "requester_email:desk@example.com\n", encoding="utf-8")
    flags = [{"type": "email", "value": EMAIL}]
    identities, requester = with_identities_file(flags, None, str(ids))
    assert identities == [
        {"type": "email", "value": EMAIL}, {"type": "phone", "value": "+31612345678"},
        {"type": "channel_id", "value": "whatsapp:31612345678"},
        {"type": "account_id", "value": "acct-7781"},
    ]
    assert requester == "desk@example.com"


def test_without_a_requester_email_the_first_email_identity_answers() -> None:
    flags = [{"type": "phone", "value": "+31612345678"}, {"type": "email", "value": EMAIL}]
    assert with_identities_file(flags, None, None) == (flags, EMAIL)
    assert with_identities_file(flags, "", None) == (flags, ""), "empty is refused later"
    assert with_identities_file([], None, None) == ([], "")


def test_the_code_from_a_file_stdin_or_a_terminal(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    code = tmp_path / "code.txt"
    code.write_text(" 123456\r\n", encoding="utf-8")
    assert one_time_code(None, str(code)) == "123456"
    assert one_time_code("654321", None) == "654321"

    stdin = io.TextIOWrapper(io.BytesIO(b"234567\n"))
    monkeypatch.setattr("sys.stdin", stdin)
    assert one_time_code(None, "-") == "234567"

    monkeypatch.setattr(stdin, "isatty", lambda: True)
    asked: list[str] = []

    def typed(prompt: str) -> str:
        asked.append(prompt)
        return " 345678 "

    monkeypatch.setattr(secret_input.getpass, "getpass", typed)
    assert one_time_code(None, "-") == "345678" and asked == ["One-time code (not shown): "]


@pytest.mark.parametrize(("text", "problem"), [
    (f"{EMAIL}\n", "line 1 is not type:value"),
    (f"{EMAIL}:{EMAIL}\n", "line 1: unknown type"),
    (f"email:{EMAIL}\nrequester_email:{EMAIL}\nrequester_email:{EMAIL}\n",
     "line 3: requester_email is given twice"),
    ("# nothing\n", "has no type:value line"),
])
def test_a_refusal_names_the_line_and_never_the_value(tmp_path: Path, text: str,
                                                      problem: str) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text(text, encoding="utf-8")
    with pytest.raises(SecretInputError) as refused:
        with_identities_file([], None, str(ids))
    assert problem in str(refused.value) and "ana.silva" not in str(refused.value)
