"""The officers' commands: ``officers keygen|bootstrap|register|revoke|list`` and ``login``.

An officer makes a key (``officers keygen``) and gives its public half to an administrator,
who registers it with roles (``officers register``, signed with the administrator's own
credential). The first administrator is registered by the operator, with the server secret
(``officers bootstrap``). ``login`` signs a login with the officer's key and saves the
credential the directory answers with; every other officer command signs with both.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.errors import cli_settings, fail
from cli.service_client import OfficerServiceClient
from dsr import officers
from dsr.assertions import Role, public_key_text
from dsr.credentials import CredentialError, Signer, credential_claims, generate_key, load_key
from dsr.database import make_engine
from dsr.files import open_private, private_folder
from dsr.settings import Settings
from services.workflow_client import OfficerError, describe_errors

officers_app = typer.Typer(no_args_is_help=True, help="The officers' directory and keys.")
console = Console()

OfficerIdArg = Annotated[str, typer.Argument(metavar="OFFICER_ID",
                                             help="e.g. officer.tan (lowercase)")]
RolesOpt = Annotated[str, typer.Option(help="Comma-separated: officer, approver, auditor, "
                                            "administrator.")]
PublicKeyOpt = Annotated[str, typer.Option("--public-key",
                                           help="As the officer's keygen printed it.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]




def _registration(officer_id: str, roles: str, public_key: str) -> officers.Registration:
    try:
        return officers.Registration(officer_id=officer_id, public_key=public_key,
                                     roles=[r.strip() for r in roles.split(",") if r.strip()])
    except ValidationError as error:
        fail(describe_errors(error, "the registration"), code=2)


@officers_app.command("keygen")
def keygen() -> None:
    """Make your officer key (a private file) and print its public half for an administrator."""
    settings = cli_settings()
    try:
        key = generate_key(settings.officer_key_path)
    except CredentialError as error:
        fail(str(error))
    console.print(f"key written to {settings.officer_key_path} (keep it private)\n"
                  f"public key: {public_key_text(key.public_key())}", highlight=False)


@officers_app.command("bootstrap")
def bootstrap(officer_id: OfficerIdArg, public_key: PublicKeyOpt,
              roles: RolesOpt = "administrator") -> None:
    """The operator registers the first administrator (needs the server secret; refused once
    an administrator exists: they register everyone else)."""
    settings = cli_settings()
    registration = _registration(officer_id, roles, public_key)
    engine = make_engine(settings.app_database_url)
    active = [o for o in officers.officers(engine)
              if Role.ADMINISTRATOR in o.roles and o.revoked_at is None]
    if active:
        fail(f"{active[0].officer_id} is an administrator already: they register officers "
              "with python starter.py officers register")
    officers.register(engine, settings.secret, registration, officers.OPERATOR, datetime.now(UTC))
    console.print(f"{officer_id} registered as {', '.join(registration.roles)} by the operator; "
                  "they log in with: python starter.py login", highlight=False)


@officers_app.command("register")
def register(officer_id: OfficerIdArg, public_key: PublicKeyOpt,
             roles: RolesOpt = "officer") -> None:
    """Register an officer (or change their roles or key): an administrator's action."""
    registration = _registration(officer_id, roles, public_key)
    _directory("register_officer", registration)
    console.print(f"{officer_id} registered as {', '.join(registration.roles)}", highlight=False)


@officers_app.command("revoke")
def revoke(officer_id: OfficerIdArg) -> None:
    """Revoke an officer: refused at once by the officer service, and no new credential."""
    try:
        revocation = officers.Revocation(officer_id=officer_id)
    except ValidationError as error:
        fail(describe_errors(error, "the officer id"), code=2)
    _directory("revoke_officer", revocation)
    console.print(f"{officer_id} revoked; credentials already issued end within hours",
                  highlight=False)


def officer_service(settings: Settings) -> OfficerServiceClient:
    """The officer service, as this officer (signing with their key and credential)."""
    try:
        signer = Signer.from_files(settings.officer_key_path, settings.officer_credential_path,
                                   settings.temporal_namespace, settings.policy_dir)
    except CredentialError as error:
        raise OfficerError(str(error)) from None
    return OfficerServiceClient(settings.officer_service_url, signer)


def _directory(action: str, arguments: BaseModel | None = None) -> Any:
    try:
        return asyncio.run(officer_service(cli_settings()).directory(action, arguments))
    except OfficerError as error:
        fail(str(error))


@officers_app.command("list")
def list_officers(as_json: JsonOpt = False) -> None:
    """The registered officers, their roles, and who registered or revoked them."""
    listed = [officers.Officer.model_validate(o) for o in _directory("list_officers")]
    if as_json:
        print(json.dumps([o.model_dump(mode="json") for o in listed], indent=2))
        return
    table = Table("officer", "roles", "registered", "by", "revoked")
    for o in listed:
        table.add_row(escape(o.officer_id), ", ".join(o.roles), f"{o.registered_at:%Y-%m-%d}",
                      escape(o.registered_by),
                      f"{o.revoked_at:%Y-%m-%d}" if o.revoked_at else "")
    console.print(table)


def login(officer_id: Annotated[str | None, typer.Argument(
        metavar="OFFICER_ID", help="Your officer id (default: settings' officer name).")] = None,
          ) -> None:
    """Log in: sign with your key, save the credential the directory issues (hours)."""
    settings = cli_settings()
    who = officer_id or settings.officer_name
    try:
        key = load_key(settings.officer_key_path)
        login_ = officers.sign_login(key, who, settings.temporal_namespace, datetime.now(UTC))
        credential = asyncio.run(OfficerServiceClient(settings.officer_service_url).login(login_))
    except ValidationError as error:
        fail(describe_errors(error, "the officer id"), code=2)
    except (CredentialError, OfficerError) as error:
        fail(str(error))
    private_folder(settings.officer_credential_path.parent)
    with open_private(settings.officer_credential_path) as file:
        file.write(credential.encode())
    claims = credential_claims(credential)
    until = datetime.fromtimestamp(claims["exp"], UTC)
    console.print(f"logged in as {who} ({', '.join(claims['roles'])}) until "
                  f"{until:%Y-%m-%d %H:%M} UTC", highlight=False)
