"""Retiring a payload key: refused while any open workflow still needs it.

A key may go once no open request holds a payload under it: requests open at the rotation
close, and deferred erasures (which may wait for years) move onto the newest key with
``starter.py hold recheck``. ``starter.py keys retire ID`` looks at the current run of every
open workflow (its raw history, never decrypted) and refuses, listing them, while any still
holds a payload under the key; otherwise it removes the key from the key file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Annotated

import typer
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from dsr.codec import KEY_ID_METADATA
from dsr.keyring import (
    Keyring,
    KeyringError,
    default_key_file,
    key_file_lock,
    load_keyring,
    read_key_file,
    write_key_file,
)
from dsr.settings import Settings, SettingsError, load_settings
from dsr.temporal import connect
from dsr.temporal_token import TokenError

OPEN = "ExecutionStatus = 'Running'"
AT_ONCE = 20
SHOWN = 20

keys_app = typer.Typer(no_args_is_help=True, help="The payload keys.")


class KeyInUse(Exception):
    def __init__(self, key_id: str, holders: list[str]) -> None:
        shown = ", ".join(holders[:SHOWN]) + (" ..." if len(holders) > SHOWN else "")
        super().__init__(
            f"key {key_id!r} is still used by {len(holders)} open workflow(s): {shown}. "
            "Retire it once they have closed; deferred erasures move onto the newest key "
            "with: python starter.py hold recheck")
        self.holders = holders


async def key_holders(client: Client, key_id: str) -> list[str]:
    """The open workflows whose current run holds a payload under ``key_id``."""
    wanted = key_id.encode()
    open_ids = [execution.id async for execution in client.list_workflows(OPEN)]
    holders: list[str] = []
    for start in range(0, len(open_ids), AT_ONCE):
        batch = open_ids[start:start + AT_ONCE]
        uses = await asyncio.gather(*(_uses(client, workflow_id, wanted) for workflow_id in batch))
        holders += [workflow_id for workflow_id, used in zip(batch, uses, strict=True) if used]
    return sorted(holders)


async def _uses(client: Client, workflow_id: str, key_id: bytes) -> bool:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return any(payload.metadata.get(KEY_ID_METADATA) == key_id
               for event in history.events for payload in _payloads(event))


def _payloads(message: Message) -> Iterator[Payload]:
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        items = value.values() if hasattr(value, "values") else (
            [value] if isinstance(value, Message) else value)
        for item in items:
            if isinstance(item, Message):
                yield from _payloads(item)


def without(keyring: Keyring, key_id: str) -> Keyring:
    """The keyring less ``key_id``; refused for an unknown key or the newest."""
    if key_id not in keyring:
        raise KeyringError(f"there is no payload key {key_id!r}; the keys are: "
                           f"{', '.join(keyring.ids)}")
    if key_id == keyring.newest_id:
        raise KeyringError(f"{key_id!r} is the newest key, which encrypts new payloads: add a "
                           "newer key first, and retire this one once nothing needs it")
    return Keyring([key for key in keyring.keys if key.key_id != key_id])


async def retire(settings: Settings, client: Client, key_id: str) -> str:
    """Remove ``key_id`` from the key file, unless an open workflow still holds it."""
    without(load_keyring(settings), key_id)
    holders = await key_holders(client, key_id)
    if holders:
        raise KeyInUse(key_id, holders)
    if settings.payload_keys is not None:
        return (f"no open workflow uses {key_id!r}: remove its entry from DSR_PAYLOAD_KEYS "
                "and restart the workers, the CLI's hosts and the servers")
    path = settings.payload_key_file or default_key_file(settings)
    with key_file_lock(path):
        write_key_file(path, without(read_key_file(path), key_id))
    return f"key {key_id!r} retired from {path}: restart the workers and the servers"


@keys_app.command("retire")
def retire_command(key_id: Annotated[str, typer.Argument(metavar="KEY_ID")]) -> None:
    """Remove an old payload key, once no open workflow holds a payload under it."""
    async def work(settings: Settings) -> str:
        return await retire(settings, await connect(settings), key_id)

    try:
        typer.echo(asyncio.run(work(load_settings())))
    except (SettingsError, KeyringError, TokenError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    except KeyInUse as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
