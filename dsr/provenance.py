"""Where a rule or text in ``dsr/policy/*.yaml`` comes from, and whether Legal confirmed it.

Every rule and text carries ``status`` (draft or confirmed) and ``source`` (a citation). A
confirmed one also names who confirmed it and when: either ``privacy-statement`` (what the
group's privacy statement itself says counts as confirmed) or the officer id of the
administrator or lawyer whose authenticated confirmation is in the ledger
(``starter.py rules confirm``). A draft decides nothing on its own: see ``docs/legal.md``.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, model_validator

from dsr.models import StrictModel

STATEMENT = "privacy-statement"  # confirmed_by for what the privacy statement itself says


class RuleStatus(StrEnum):
    DRAFT = "draft"
    CONFIRMED = "confirmed"


class Provenance(StrictModel):
    """The status and source of one rule or text. Inherit from it, or nest it."""

    status: RuleStatus
    source: Annotated[str, Field(min_length=3)]
    confirmed_by: str | None = None
    confirmed_on: date | None = None

    @model_validator(mode="after")
    def _confirmation_complete(self) -> Self:
        confirmed = self.status is RuleStatus.CONFIRMED
        if confirmed and not (self.confirmed_by and self.confirmed_on):
            raise ValueError(
                "a confirmed rule names confirmed_by and confirmed_on: confirm it with "
                "`starter.py rules confirm`, or set status: draft"
            )
        if not confirmed and (self.confirmed_by or self.confirmed_on):
            raise ValueError("a draft has no confirmed_by or confirmed_on: remove them")
        return self

    @property
    def is_draft(self) -> bool:
        return self.status is RuleStatus.DRAFT
