"""The orchestrator's activities as the workflows see them: each one's name, input and
output, in light modules (pydantic models and the domain's types; no database, mailer, blob
store or settings) that the workflows import and the implementations (``activities/*.py``)
import back.

A workflow calls ``calls.activity(SEND_ANSWER, answer, ...)``; the implementation is declared
``@activity.defn(name=SEND_ANSWER.name)``. A name never changes: recorded histories name it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class ActivityInterface(Generic[In, Out]):
    """One activity: its name, its input model, and its result's type as the data converter
    reads it (a model, ``list[...]``, ``X | None``; None: it returns nothing)."""

    name: str
    input: type[In]
    output: Any

    def untyped(self) -> ActivityInterface[In, Any]:
        """This activity with its result read as recorded, with no type: for a history
        recorded before the activity had this output (the converter gives a dict, or None)."""
        return ActivityInterface[In, Any](name=self.name, input=self.input, output=None)
