"""What the officer's request commands share: the request id argument (checked before anything
is sent), ``--json``, ``--officer`` for requests begun before signed assertions, validating a
payload here, and one signed action through the officer service."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from cli.errors import cli_settings, fail
from cli.officers import officer_service
from dsr.models import REQUEST_ID
from services.workflow_client import OfficerError, describe_errors

M = TypeVar("M", bound=BaseModel)


def _request_id_argument(value: str) -> str:
    # Checked before anything is asked of the officer service: a mistyped id (or an email
    # pasted in its place) exits 2 and is not repeated back.
    if not REQUEST_ID.fullmatch(value):
        raise typer.BadParameter("a request id is 3-64 letters, digits, '-' or '_', starting "
                                 "with a letter or digit")
    return value


RequestIdArg = Annotated[str, typer.Argument(callback=_request_id_argument,
                                             metavar="REQUEST_ID")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
OfficerOpt = Annotated[str | None, typer.Option(
    help="Only for requests begun before signed assertions: the name to record (default: "
         "your officer id). Later requests record who signed.")]


def payload(model: type[M], **fields: Any) -> M:
    """An action's arguments, validated here: bad input exits 2 naming the field, before
    anything is sent."""
    try:
        return model(**fields)
    except ValidationError as error:
        fail(describe_errors(error, "the input"), code=2)


def act(action: str, target: str, arguments: BaseModel, missing_exit: int = 1) -> Any:
    """One of the officer service's actions, signed as this officer; a refusal exits 1, or
    ``missing_exit`` when it names a request or link there is not."""
    try:
        return asyncio.run(officer_service(cli_settings()).action(action, target, arguments))
    except OfficerError as error:
        unknown = ("in the register", "no download link")
        fail(str(error), missing_exit if any(s in str(error) for s in unknown) else 1)
