"""The codec server's protocol: Temporal's JSON form of payloads, read and checked, and what
the server logs of them (the workflow ids they name, never their data)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import suppress
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from dsr.codec import ENCODING
from services.oidc import Refused

MAX_BODY_BYTES = 16 * 1024 * 1024
# Where a payload may name its workflow: metadata the encoder stamps, or a header.
WORKFLOW_ID_METADATA = ("dsr-workflow-id", "dsr-workflow-id-prefix", "workflow-id", "workflow_id",
                        "workflowId")
WORKFLOW_ID_HEADER = "X-Workflow-Id"


async def read_payloads(request: web.Request) -> list[Payload]:
    """The request's payloads, or ``Refused`` (400, 413) naming what is wrong, never quoting
    the body."""
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Refused(413, f"the body is larger than {MAX_BODY_BYTES} bytes") from None
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refused(400, "the body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("payloads"), list):
        raise Refused(400, 'the body must be {"payloads": [...]}') from None
    payloads = Payloads()
    try:
        json_format.ParseDict(data, payloads, ignore_unknown_fields=True)
    except json_format.ParseError as error:
        # The parser's message may quote a value; name the field only.
        where = str(error).split(":", 1)[0][:200]
        raise Refused(400, f"the payloads are not valid Temporal payloads ({where})") from None
    return list(payloads.payloads)


async def decoded_for_display(codec: PayloadCodec, payloads: list[Payload]) -> list[Payload]:
    """The encrypted payloads decrypted (a foreign one shown as its refusal marker); one that
    is not encrypted is shown as it is, as the Web UI would show it without a codec."""
    encrypted = [p for p in payloads if p.metadata.get("encoding") == ENCODING]
    decoded = iter(await codec.decode(encrypted))
    return [next(decoded) if p.metadata.get("encoding") == ENCODING else p for p in payloads]


def workflow_ids(payloads: Iterable[Payload], header: str | None) -> list[str]:
    """The workflow ids the payloads' metadata or the header name (at most 10, for the log)."""
    found = {header.strip()} if header and header.strip() else set()
    for payload in payloads:
        for key in WORKFLOW_ID_METADATA:
            if key in payload.metadata:
                with suppress(UnicodeDecodeError):
                    found.add(payload.metadata[key].decode("utf-8").strip())
    return sorted(value[:200] for value in found if value)[:10]
