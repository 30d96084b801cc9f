"""The privacy officer's CLI: submit, verify, extend, approve or deny, cancel, follow requests,
and run the embedded stack. ``python starter.py --help`` lists the commands."""

from __future__ import annotations

import os
import sys

import typer

from cli import following as following_cli
from cli import intake as intake_cli
from cli import operator
from cli import updates as updates_cli
from cli.holds import hold_app
from cli.keys import keys_app
from cli.ledger import ledger_app
from cli.officers import login, officers_app
from cli.records import package, proof
from cli.report import report_command
from cli.rules import rules_app
from cli.sessions import ui_session
from dsr.files import private_umask

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Data-subject-request orchestrator: the privacy officer's commands.")
app.add_typer(operator.stack_app, name="stack")
app.add_typer(ledger_app, name="ledger")
app.add_typer(rules_app, name="rules")
app.add_typer(keys_app, name="keys")
app.add_typer(officers_app, name="officers")
for commands in (intake_cli.COMMANDS, updates_cli.COMMANDS, following_cli.COMMANDS):
    for name, command in commands.items():
        app.command(name)(command)
app.command("login")(login)
app.command("report")(report_command)
app.command("ui-session")(ui_session)
app.add_typer(hold_app, name="hold")
app.command()(package)
app.command()(proof)
for name, command in operator.COMMANDS.items():
    app.command(name)(command)


def main() -> int:
    private_umask()  # var/ and whatever the officer's commands write: the owner's only
    try:
        app()
    except SystemExit as done:
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
            return 1
        return done.code or 0
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's native threads can abort a short-lived process during interpreter
    # teardown (temporalio/sdk-python#300): leave without it, everything is flushed.
    os._exit(code)
