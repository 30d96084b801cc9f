"""Who receives personal data, and how it crosses borders: two data files Legal owns.

``dsr/policy/recipients.yaml`` names the recipients the catalogue's categories refer to by id
(GDPR Art. 15(1)(c); CJEU C-154/21: the actual recipients, where they are known): each
recipient is either a list of named parties, each with its country and transfer safeguard
(a text with its provenance, or ``unconfirmed``), a group whose actual members are available
on request (the statement points to its "Approved Subprocessors" overview), or a category by
nature (authorities, named only when the law requires a disclosure).

``dsr/policy/transfers.yaml`` holds the transfers text an access answer states once (GDPR
Art. 15(2), Art. 12(1)), per jurisdiction: a jurisdiction without its own uses ``default``.

Nothing here is invented: a fact nobody has confirmed is ``unconfirmed`` and the answer says
it is being confirmed; every text carries its provenance (``dsr.provenance``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, Field, field_validator, model_validator

from dsr.models import Jurisdiction, Language, StrictModel
from dsr.provenance import Provenance
from dsr.retention import POLICY_DIR, LocalText, read_policy_file

RECIPIENTS_FILE = POLICY_DIR / "recipients.yaml"
TRANSFERS_FILE = POLICY_DIR / "transfers.yaml"
UNCONFIRMED = "unconfirmed"


class UnknownRecipient(KeyError):
    """A catalogue category refers to a recipient id the recipients file does not name."""

    def __str__(self) -> str:
        return str(self.args[0])


class Listing(StrEnum):
    LISTED = "listed"  # ``parties`` names every actual recipient
    ON_REQUEST = "on_request"  # the actual recipients are not listed: available on request
    CATEGORY = "category"  # a category by nature (authorities): no standing list


class PartyFact(LocalText):
    """A fact in English and Chinese, with where it comes from."""

    provenance: Provenance


# --- what an answer gets -------------------------------------------------------------------


class PartyFacts(BaseModel):
    name: str
    country: str | None  # None: being confirmed
    safeguard: str | None  # None: being confirmed


class RecipientFacts(BaseModel):
    """One recipient in one language; ``parties`` only when ``listing`` is listed."""

    name: str
    listing: Listing
    parties: list[PartyFacts] = Field(default_factory=list)


class OnRequestFacts(BaseModel):
    text: str
    link: str


class TransferFacts(BaseModel):
    heading: str
    text: str


# --- recipients.yaml -----------------------------------------------------------------------


class Party(StrictModel):
    """One actual recipient. ``country`` and ``safeguard`` are a text with its provenance, or
    ``unconfirmed`` (read as None): never left out, never guessed."""

    name: Annotated[str, Field(min_length=1)]
    country: PartyFact | None
    safeguard: PartyFact | None

    @field_validator("country", "safeguard", mode="before")
    @classmethod
    def _unconfirmed(cls, value: Any) -> Any:
        if value == UNCONFIRMED:
            return None
        if value is None or isinstance(value, str):
            raise ValueError(f"give a text with its provenance, or write {UNCONFIRMED}")
        return value

    @property
    def unconfirmed(self) -> list[str]:
        """The facts still unconfirmed: ``country``, ``safeguard``."""
        return [fact for fact in ("country", "safeguard") if getattr(self, fact) is None]

    def facts(self, language: Language) -> PartyFacts:
        return PartyFacts(
            name=self.name,
            country=self.country.in_language(language) if self.country else None,
            safeguard=self.safeguard.in_language(language) if self.safeguard else None,
        )


class Recipient(StrictModel):
    name: LocalText  # as a category's recipients list shows it; names every listed party
    listing: Listing
    parties: list[Party] = Field(default_factory=list)
    provenance: Provenance

    @model_validator(mode="after")
    def _parties_match_listing(self) -> Self:
        if self.listing is not Listing.LISTED:
            if self.parties:
                raise ValueError(f"only a listed recipient names parties, not {self.listing}")
            return self
        if not self.parties:
            raise ValueError("a listed recipient names its parties")
        for party in self.parties:
            for text in filter(None, (self.name.en, self.name.zh)):
                if party.name not in text:
                    raise ValueError(f"the name {text!r} does not name the party {party.name!r}")
        return self

    def facts(self, language: Language) -> RecipientFacts:
        return RecipientFacts(
            name=self.name.in_language(language),
            listing=self.listing,
            parties=[party.facts(language) for party in self.parties],
        )


class OnRequest(StrictModel):
    """What the answer says where the actual recipients are not listed, and the link."""

    text: LocalText
    link: Annotated[str, Field(pattern=r"^https://\S+$")]
    provenance: Provenance

    def facts(self, language: Language) -> OnRequestFacts:
        return OnRequestFacts(text=self.text.in_language(language), link=self.link)


class RecipientList(StrictModel):
    version: str
    on_request: OnRequest
    recipients: dict[str, Recipient]  # id -> recipient

    def recipient(self, recipient_id: str) -> Recipient:
        try:
            return self.recipients[recipient_id]
        except KeyError:
            raise UnknownRecipient(
                f"the recipients file names no recipient {recipient_id!r}: add it to "
                f"{RECIPIENTS_FILE.name}"
            ) from None


# --- transfers.yaml ------------------------------------------------------------------------


class TransferText(StrictModel):
    """A jurisdiction's transfers section, or ``same_as`` another jurisdiction's."""

    heading: LocalText | None = None
    text: LocalText | None = None
    provenance: Provenance | None = None
    same_as: Jurisdiction | None = None

    @model_validator(mode="after")
    def _own_or_same_as(self) -> Self:
        own = (self.heading, self.text, self.provenance)
        if self.same_as is not None and any(part is not None for part in own):
            raise ValueError("same_as stands alone: remove heading, text and provenance")
        if self.same_as is None and any(part is None for part in own):
            raise ValueError("give heading, text and provenance, or same_as")
        return self

    def facts(self, language: Language) -> TransferFacts:
        assert self.heading is not None and self.text is not None  # checked on load
        return TransferFacts(
            heading=self.heading.in_language(language), text=self.text.in_language(language)
        )


class Transfers(StrictModel):
    version: str
    default: TransferText  # for every jurisdiction not under ``jurisdictions``
    jurisdictions: dict[Jurisdiction, TransferText] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _same_as_has_text(self) -> Self:
        if self.default.same_as is not None:
            raise ValueError("default states its own heading, text and provenance")
        for jurisdiction, entry in self.jurisdictions.items():
            target = self.jurisdictions.get(entry.same_as) if entry.same_as else entry
            if target is None or target.same_as is not None:
                raise ValueError(
                    f"{jurisdiction}: same_as names a jurisdiction with its own text"
                )
        return self

    def text_for(self, jurisdiction: Jurisdiction) -> TransferText:
        entry = self.jurisdictions.get(jurisdiction, self.default)
        return self.jurisdictions[entry.same_as] if entry.same_as else entry


def load_recipients(path: Path | None = None) -> RecipientList:
    return read_policy_file(path or RECIPIENTS_FILE, RecipientList)


def load_transfers(path: Path | None = None) -> Transfers:
    return read_policy_file(path or TRANSFERS_FILE, Transfers)
