"""The officer's CLI side of the officer service (``services.officer_service``): it signs each
action with the officer's key and credential and sends it; it holds no secret of the product.
A refusal comes back as :class:`OfficerError` with the service's reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel

from dsr import officers
from dsr.credentials import CredentialError, Signer
from dsr.files import open_private
from services.workflow_client import OfficerError, signed
from workflows.models import OfficerPayload, UpdateResult

TIMEOUT = aiohttp.ClientTimeout(total=600)
CHUNK_BYTES = 64 * 1024


class OfficerServiceClient:
    def __init__(self, url: str, signer: Signer | None = None) -> None:
        self.url = url.rstrip("/")
        self.signer = signer

    @property
    def officer_id(self) -> str:
        return self._signer().officer_id

    async def login(self, login: officers.Login) -> str:
        answer = await self._post("/v1/login", login.model_dump(mode="json"))
        return str(answer["credential"])

    async def update(self, request_id: str, name: str, payload: OfficerPayload) -> UpdateResult:
        if payload.assertion is None:
            payload = signed(self._signer(), request_id, name, payload)
        answer = await self._post(f"/v1/requests/{request_id}/{name}",
                                  payload.model_dump(mode="json"))
        return UpdateResult.model_validate(answer)

    async def directory(self, action: str, arguments: BaseModel | None = None) -> Any:
        """One of the officers' directory's actions."""
        return await self.action(action, officers.DIRECTORY, arguments)

    async def action(self, action: str, target: str,
                     arguments: BaseModel | None = None) -> Any:
        """One of the service's other actions (``/v1/actions``), signed for ``target``."""
        return await self._post(f"/v1/actions/{action}",
                                self._signed_action(action, target, arguments))

    async def download(self, action: str, target: str, arguments: BaseModel, out: Path) -> int:
        """An action answered with bytes (a package, a proof), written into ``out`` (the
        owner's only) as they arrive; a refusal leaves no file. Returns the bytes written."""
        request = self._signed_action(action, target, arguments)
        try:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as session, session.post(
                    f"{self.url}/v1/actions/{action}", json=request) as response:
                if response.status >= 400:
                    answer = await response.json(content_type=None)
                    raise OfficerError(f"refused: {answer.get('error')}")
                written = 0
                with open_private(out) as target_file:
                    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                        target_file.write(chunk)
                        written += len(chunk)
                return written
        except (aiohttp.ClientError, TimeoutError) as error:
            out.unlink(missing_ok=True)
            raise OfficerError(f"cannot reach the officer service at {self.url} "
                               f"({type(error).__name__})") from None

    def _signed_action(self, action: str, target: str,
                       arguments: BaseModel | None) -> dict[str, Any]:
        body = arguments.model_dump(mode="json") if arguments is not None else {}
        try:
            assertion = self._signer().sign(target, action, arguments or body)
        except CredentialError as error:
            raise OfficerError(str(error)) from None
        return {"arguments": body, "assertion": assertion.model_dump(mode="json")}

    def _signer(self) -> Signer:
        if self.signer is None:
            raise OfficerError("no officer credential: log in with python starter.py login")
        return self.signer

    async def _post(self, path: str, body: Any) -> Any:
        try:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as session, session.post(
                    self.url + path, json=body) as response:
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise OfficerError(f"cannot reach the officer service at {self.url} "
                               f"({type(error).__name__}): start the stack with: python "
                               "starter.py stack up, or set DSR_OFFICER_SERVICE_URL") from None
        except ValueError:
            raise OfficerError(f"the officer service at {self.url} did not answer JSON "
                               f"(HTTP {response.status})") from None
        if response.status >= 400:
            reason = answer.get("error") if isinstance(answer, dict) else None
            raise OfficerError(f"refused: {reason or f'HTTP {response.status}'}")
        return answer
