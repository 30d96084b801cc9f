"""The product's data converter: pydantic payloads, encrypted and bound (``dsr.codec``), and
the one place where a payload that is not the product's is refused.

A foreign payload reaches the converter as a refusal marker, and is refused by where it is:
- an Update's argument: the Update is rejected before it is accepted into history;
- a Signal's argument: the SDK drops the Signal, logging the encoding and the workflow id;
- a workflow's start input: the workflow fails at its first task, before any activity;
- an activity's result: it becomes :class:`Refused`, which the workflow counts as that call's
  failure and repeats (``workflows.base``); an activity's input: the activity refuses to run.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Self

from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    EncodingPayloadConverter,
    SerializationContext,
    WithSerializationContext,
)
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from dsr.codec import REFUSAL_METADATA, REFUSED_ENCODING, EncryptionCodec, printable
from dsr.keyring import Keyring

FOREIGN_PAYLOAD = "ForeignPayload"


class Refused(BaseModel):
    """An activity's result that was not the product's: counts as the call's failure."""

    reason: str
    encoding: str

    def __str__(self) -> str:
        return f"a result that is not the product's was refused ({self.reason})"


def refusal_message(reason: str, encoding: str) -> str:
    return (f"a payload that is not the product's was refused ({reason}, encoding "
            f"{encoding!r}); only the product's own clients may send to this workflow")


class RefusalConverter(EncodingPayloadConverter, WithSerializationContext):
    """Reads refusal markers (writes nothing): by their context, a :class:`Refused` result or
    an error. A marker for an unknown key fails the task rather than the workflow, so a
    worker started without a key it needs recovers once the key is back."""

    def __init__(self, context: SerializationContext | None = None) -> None:
        self._context = context

    @property
    def encoding(self) -> str:
        return REFUSED_ENCODING.decode()

    def with_context(self, context: SerializationContext) -> Self:
        return type(self)(context)

    def to_payload(self, value: Any) -> Payload | None:
        return None

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        reason = printable(payload.metadata.get(REFUSAL_METADATA, b"unknown"))
        encoding = printable(payload.metadata.get("refused-encoding", b"none"))
        if isinstance(self._context, ActivitySerializationContext):
            return Refused(reason=reason, encoding=encoding)
        if reason == "unknown-key":
            raise KeyError(refusal_message(reason, encoding))
        raise ApplicationError(
            refusal_message(reason, encoding), type=FOREIGN_PAYLOAD, non_retryable=True
        )


class ProductPayloadConverter(PydanticPayloadConverter):
    """Pydantic's JSON converter and the refusal markers' reader."""

    def __init__(self) -> None:
        super().__init__()
        self._set_converters(*self.converters.values(), RefusalConverter())


class RefuseForeignInput(Interceptor):
    """An activity whose input is not the product's does not run (nor is it retried)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CheckedActivity(next)


class _CheckedActivity(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        refused = next((arg for arg in input.args if isinstance(arg, Refused)), None)
        if refused is not None:
            raise ApplicationError(refusal_message(refused.reason, refused.encoding),
                                   type=FOREIGN_PAYLOAD, non_retryable=True)
        return await super().execute_activity(input)


def data_converter(keyring: Keyring) -> DataConverter:
    """The product's converter: pydantic payloads, encrypted and bound; failure messages and
    stack traces moved into an (encrypted) payload, so the server sees "Encoded failure"."""
    return dataclasses.replace(
        pydantic_data_converter,
        payload_converter_class=ProductPayloadConverter,
        payload_codec=EncryptionCodec(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
