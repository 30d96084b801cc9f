"""The officer's CLI side of the officer service (``dsr.officerservice``): it signs each
action with the officer's key and credential and sends it; it holds no secret of the product.
A refusal comes back as :class:`OfficerError` with the service's reason."""

from __future__ import annotations

from typing import Any

import aiohttp
from pydantic import BaseModel

from dsr import officers
from dsr.credentials import CredentialError, Signer
from dsr.officer import OfficerError, signed
from workflows.models import OfficerPayload, UpdateResult

TIMEOUT = aiohttp.ClientTimeout(total=60)


class OfficerServiceClient:
    def __init__(self, url: str, signer: Signer | None = None) -> None:
        self.url = url.rstrip("/")
        self.signer = signer

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
        signer = self._signer()
        body = arguments.model_dump(mode="json") if arguments is not None else {}
        try:
            assertion = signer.sign(officers.DIRECTORY, action, arguments or body)
        except CredentialError as error:
            raise OfficerError(str(error)) from None
        return await self._post(f"/v1/officers/{action}", {
            "arguments": body, "assertion": assertion.model_dump(mode="json")})

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
