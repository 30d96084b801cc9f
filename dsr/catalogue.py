"""What an answer tells a person about their data (GDPR Art. 15(1)-(2)) and where to complain.

``dsr/policy/catalogue.yaml`` states, per connector and category, the purposes, legal basis,
recipients (ids of ``dsr/policy/recipients.yaml``), retention, source and automated
decision-making (Art. 15(1)(h)), each category with its provenance; transfers are stated once
per answer (``dsr.sharing``). ``dsr/policy/authorities.yaml`` names the supervisory authority
per jurisdiction and the right to a judicial remedy. Texts are kept in English and Chinese; a
missing translation falls back to English.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, Field, model_validator

from dsr.models import Jurisdiction, Language, StrictModel
from dsr.policy_files import SourcedText
from dsr.provenance import Provenance
from dsr.retention import POLICY_DIR, LocalText, read_policy_file
from dsr.sharing import RecipientList, load_recipients

CATALOGUE_FILE = POLICY_DIR / "catalogue.yaml"
AUTHORITIES_FILE = POLICY_DIR / "authorities.yaml"


class UnknownCategory(KeyError):
    """The catalogue has no entry for a connector's category."""

    def __str__(self) -> str:
        return str(self.args[0])


class Decisions(StrEnum):
    NONE = "none"  # no automated decision-making, including profiling, with this data
    DESCRIBED = "described"  # logic, significance and envisaged consequences stated
    UNCONFIRMED = "unconfirmed"  # nobody has confirmed it: never rendered as none


class DecisionFacts(BaseModel):
    kind: Decisions
    logic: str | None = None
    significance: str | None = None
    consequences: str | None = None


class AutomatedDecisions(StrictModel):
    """GDPR Art. 15(1)(h) for one category. ``unconfirmed`` may be written alone."""

    kind: Decisions
    logic: LocalText | None = None
    significance: LocalText | None = None
    consequences: LocalText | None = None
    provenance: Provenance | None = None  # None only when unconfirmed

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if not isinstance(data, str):
            return data
        if data == Decisions.UNCONFIRMED.value:
            return {"kind": data}
        raise ValueError("write unconfirmed, or kind (none or described) with its provenance")

    @model_validator(mode="after")
    def _texts_match_kind(self) -> Self:
        texts = (self.logic, self.significance, self.consequences)
        described = self.kind is Decisions.DESCRIBED
        if described and any(text is None for text in texts):
            raise ValueError("described states logic, significance and consequences")
        if not described and any(text is not None for text in texts):
            raise ValueError(f"{self.kind} states no logic, significance or consequences")
        if (self.kind is Decisions.UNCONFIRMED) != (self.provenance is None):
            raise ValueError("none and described carry provenance; unconfirmed stands alone")
        return self

    def facts(self, language: Language) -> DecisionFacts:
        return DecisionFacts(
            kind=self.kind,
            logic=self.logic.in_language(language) if self.logic else None,
            significance=self.significance.in_language(language) if self.significance else None,
            consequences=self.consequences.in_language(language) if self.consequences else None,
        )


class CategoryEntry(StrictModel):
    """One category's facts as the catalogue file states them (after defaults are applied)."""

    name: LocalText
    purposes: list[LocalText]
    legal_basis: LocalText
    recipients: list[Annotated[str, Field(min_length=1)]]  # ids in recipients.yaml
    retention: LocalText
    source: LocalText | None  # None: collected from the person
    automated_decisions: AutomatedDecisions
    provenance: Provenance  # of the texts above (automated_decisions states its own)


class CategoryFacts(BaseModel):
    """One category's facts in one language, ready for an answer."""

    connector: str
    category: str
    name: str
    purposes: list[str]
    legal_basis: str
    recipients: list[str]
    retention: str
    source: str | None  # None: collected from the person
    automated_decisions: DecisionFacts


class Catalogue(StrictModel):
    version: str
    connectors: dict[str, dict[str, CategoryEntry]]  # connector -> category -> facts

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        """Fill each category from the connector's and the catalogue's ``defaults``."""
        if not isinstance(data, dict) or not isinstance(data.get("connectors"), dict):
            return data
        shared = data.get("defaults") or {}
        if not isinstance(shared, dict):
            raise ValueError("defaults must map fact names to texts")
        connectors = {
            name: _connector_categories(name, shared, block)
            for name, block in data["connectors"].items()
        }
        return {key: value for key, value in data.items() if key != "defaults"} | {
            "connectors": connectors
        }

    def describes(self, connector: str, category: str) -> bool:
        return category in self.connectors.get(connector, {})

    def entry(self, connector: str, category: str) -> CategoryEntry:
        try:
            return self.connectors[connector][category]
        except KeyError:
            raise UnknownCategory(
                f"the data catalogue has no category {category!r} for connector {connector!r}: "
                f"add it to {CATALOGUE_FILE.name}"
            ) from None

    def facts(self, connector: str, category: str, language: Language,
              recipients: RecipientList | None = None) -> CategoryFacts:
        """The facts of one category; its recipients named from ``recipients`` (by default
        the shipped ``recipients.yaml``)."""
        entry = self.entry(connector, category)
        named = recipients or load_recipients()
        return CategoryFacts(
            connector=connector,
            category=category,
            name=entry.name.in_language(language),
            purposes=[text.in_language(language) for text in entry.purposes],
            legal_basis=entry.legal_basis.in_language(language),
            recipients=[named.recipient(rid).name.in_language(language)
                        for rid in entry.recipients],
            retention=entry.retention.in_language(language),
            source=entry.source.in_language(language) if entry.source else None,
            automated_decisions=entry.automated_decisions.facts(language),
        )

    def names(self, language: Language) -> dict[str, str]:
        """Every category's name, keyed ``"connector/category"`` (for an answer's context)."""
        return {
            f"{connector}/{category}": entry.name.in_language(language)
            for connector, categories in self.connectors.items()
            for category, entry in categories.items()
        }


def _connector_categories(connector: str, shared: dict[str, Any], block: Any) -> Any:
    if not isinstance(block, dict):
        return block
    unknown = set(block) - {"defaults", "categories"}
    if unknown:
        raise ValueError(
            f"connectors.{connector} takes only defaults and categories, not {sorted(unknown)}"
        )
    defaults = shared | (block.get("defaults") or {})
    categories = block.get("categories") or {}
    if not isinstance(categories, dict):
        return categories
    return {
        name: defaults | own if isinstance(own, dict) else own for name, own in categories.items()
    }


class Authority(StrictModel):
    complaint: SourcedText
    judicial_remedy: SourcedText | None = None  # None: the file's general text
    your_rights: SourcedText | None = None  # None: the file's general text
    # What an access answer under this law states besides (CCPA: sold, shared, disclosed).
    access_statement: SourcedText | None = None


class Authorities(StrictModel):
    version: str
    judicial_remedy: SourcedText
    your_rights: SourcedText
    jurisdictions: dict[Jurisdiction, Authority]

    @model_validator(mode="after")
    def _every_jurisdiction(self) -> Authorities:
        missing = [j.value for j in Jurisdiction if j not in self.jurisdictions]
        if missing:
            raise ValueError(f"jurisdictions missing: {', '.join(missing)}")
        return self

    def complaint(self, jurisdiction: Jurisdiction, language: Language) -> str:
        """Where to complain and the right to a judicial remedy, in one text."""
        authority = self.jurisdictions[jurisdiction]
        remedy = authority.judicial_remedy or self.judicial_remedy
        return f"{authority.complaint.in_language(language)}\n{remedy.in_language(language)}"

    def rights(self, jurisdiction: Jurisdiction, language: Language) -> str:
        """The person's other rights and how to exercise them (GDPR Art. 15(1)(e)), as every
        access answer states them."""
        own = self.jurisdictions[jurisdiction].your_rights
        return (own or self.your_rights).in_language(language)

    def texts_used(self, jurisdiction: Jurisdiction, access: bool) -> dict[str, SourcedText]:
        """The texts an answer under ``jurisdiction`` states, by name (access answers also
        state the person's other rights and any access statement)."""
        authority = self.jurisdictions[jurisdiction]
        texts = {"complaint": authority.complaint,
                 "judicial remedy": authority.judicial_remedy or self.judicial_remedy}
        if access:
            texts["your rights"] = authority.your_rights or self.your_rights
            if authority.access_statement is not None:
                texts["access statement"] = authority.access_statement
        return texts

    def drafts_used(self, jurisdiction: Jurisdiction, access: bool) -> list[str]:
        """Why an answer waits for review: each draft text it states, named, no data."""
        return [f"draft text: {name} ({jurisdiction.value})"
                for name, text in self.texts_used(jurisdiction, access).items() if text.is_draft]

    def access_statement(self, jurisdiction: Jurisdiction, language: Language) -> str | None:
        statement = self.jurisdictions[jurisdiction].access_statement
        return statement.in_language(language) if statement else None


def load_catalogue(path: Path | None = None) -> Catalogue:
    return read_policy_file(path or CATALOGUE_FILE, Catalogue)


def load_authorities(path: Path | None = None) -> Authorities:
    return read_policy_file(path or AUTHORITIES_FILE, Authorities)


def rights_for(jurisdiction: Jurisdiction, language: Language) -> str:
    return load_authorities().rights(jurisdiction, language)


def access_statement_for(jurisdiction: Jurisdiction, language: Language) -> str | None:
    return load_authorities().access_statement(jurisdiction, language)


def authority_for(
    jurisdiction: Jurisdiction, language: Language, authorities: Authorities | None = None
) -> str:
    """Where a person under ``jurisdiction`` may complain, with the judicial remedy."""
    return (authorities or load_authorities()).complaint(jurisdiction, language)
