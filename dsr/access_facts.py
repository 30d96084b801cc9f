"""The facts an access answer states about the data exported, and what an officer must review.

An access answer states each exported category's facts (``dsr.catalogue``), each recipient
those categories name once, with its parties' countries and transfer safeguards, and the
transfers text of the request's jurisdiction once (``dsr.sharing``). ``review_reasons`` lists
every fact such an answer would use that is unconfirmed or a draft: the answer is then held
for officer review before it is sent. Reasons name catalogue ids, recipient ids, company
names and jurisdictions, never personal data.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, Field

from dsr.catalogue import Catalogue, CategoryEntry, CategoryFacts, Decisions, load_catalogue
from dsr.models import Jurisdiction, Language
from dsr.retention import POLICY_DIR, PolicyError
from dsr.sharing import (
    Listing,
    OnRequestFacts,
    Recipient,
    RecipientFacts,
    RecipientList,
    TransferFacts,
    Transfers,
    load_recipients,
    load_transfers,
)

Exported = dict[str, list[str]]  # connector -> categories exported


class AccessPolicies(NamedTuple):
    catalogue: Catalogue
    recipients: RecipientList
    transfers: Transfers


class AnswerFacts(BaseModel):
    """What an access answer says about the exported data, in one language."""

    categories: list[CategoryFacts] = Field(default_factory=list)
    data_recipients: list[RecipientFacts] = Field(default_factory=list)  # each once
    recipients_on_request: OnRequestFacts | None = None
    transfers: TransferFacts | None = None
    being_confirmed: bool = False  # some fact above is stated as being confirmed


def load_access_policies(folder: Path = POLICY_DIR) -> AccessPolicies:
    """The catalogue, recipients and transfers files of ``folder``, checked together: a
    category naming a recipient the recipients file lacks is a ``PolicyError``."""
    policies = AccessPolicies(
        load_catalogue(folder / "catalogue.yaml"),
        load_recipients(folder / "recipients.yaml"),
        load_transfers(folder / "transfers.yaml"),
    )
    _check_recipient_ids(folder / "catalogue.yaml", policies)
    return policies


def answer_facts(policies: AccessPolicies, exported: Exported, jurisdiction: Jurisdiction,
                 language: Language) -> AnswerFacts:
    """The facts of an access answer for ``exported``; empty when nothing was exported."""
    entries = _entries(policies.catalogue, exported)
    if not entries:
        return AnswerFacts()
    used = [recipient for _, recipient in _recipients_used(policies.recipients, entries)]
    shown = [recipient for recipient in used if recipient.listing is not Listing.CATEGORY]
    on_request = any(recipient.listing is Listing.ON_REQUEST for recipient in used)
    return AnswerFacts(
        categories=[
            policies.catalogue.facts(connector, category, language, policies.recipients)
            for connector, category, _ in entries
        ],
        data_recipients=[recipient.facts(language) for recipient in shown],
        recipients_on_request=(
            policies.recipients.on_request.facts(language) if on_request else None
        ),
        transfers=policies.transfers.text_for(jurisdiction).facts(language),
        being_confirmed=_being_confirmed(entries, used),
    )


def review_reasons(policies: AccessPolicies, exported: Exported,
                   jurisdiction: Jurisdiction) -> list[str]:
    """Why an access answer for ``exported`` must be held for officer review: one short
    English reason per kind of unconfirmed fact or draft text it would use (empty: none)."""
    entries = _entries(policies.catalogue, exported)
    if not entries:
        return []
    used = _recipients_used(policies.recipients, entries)
    reasons = [*_category_reasons(entries), *_recipient_reasons(policies.recipients, used)]
    transfer = policies.transfers.text_for(jurisdiction)
    if transfer.provenance is not None and transfer.provenance.is_draft:
        reasons.append(f"draft text: transfers {jurisdiction.value}")
    return reasons


def access_review_reasons(folder: Path, exported: Exported,
                          jurisdiction: Jurisdiction) -> list[str]:
    """``review_reasons`` with the policy files of ``folder`` (the worker's policy_dir)."""
    return review_reasons(load_access_policies(folder), exported, jurisdiction)


# --- helpers -------------------------------------------------------------------------------

Entry = tuple[str, str, CategoryEntry]
Used = list[tuple[str, Recipient]]  # recipient id, recipient


def _entries(catalogue: Catalogue, exported: Exported) -> list[Entry]:
    return [
        (connector, category, catalogue.entry(connector, category))
        for connector, categories in exported.items()
        for category in categories
    ]


def _recipients_used(recipients: RecipientList, entries: list[Entry]) -> Used:
    """Each recipient the entries name, once, in the order first named."""
    ids = dict.fromkeys(rid for _, _, entry in entries for rid in entry.recipients)
    return [(rid, recipients.recipient(rid)) for rid in ids]


def _being_confirmed(entries: list[Entry], used: list[Recipient]) -> bool:
    undecided = any(
        entry.automated_decisions.kind is Decisions.UNCONFIRMED for _, _, entry in entries
    )
    return undecided or any(party.unconfirmed for r in used for party in r.parties)


def _category_reasons(entries: list[Entry]) -> list[str]:
    keys = [(f"{connector}/{category}", entry) for connector, category, entry in entries]
    decisions = [(key, entry.automated_decisions) for key, entry in keys]
    return _reasons(
        ("draft text: catalogue ", [key for key, entry in keys if entry.provenance.is_draft]),
        ("automated decisions unconfirmed: ",
         [key for key, made in decisions if made.kind is Decisions.UNCONFIRMED]),
        ("draft text: automated decisions ",
         [key for key, made in decisions if made.provenance and made.provenance.is_draft]),
    )


def _recipient_reasons(recipients: RecipientList, used: Used) -> list[str]:
    parties = [party for _, recipient in used for party in recipient.parties]
    on_request = [rid for rid, r in used if r.listing is Listing.ON_REQUEST]
    reasons = _reasons(
        ("draft text: recipients ", [rid for rid, r in used if r.provenance.is_draft]),
        ("recipient country unconfirmed: ", [p.name for p in parties if p.country is None]),
        ("transfer safeguard unconfirmed: ", [p.name for p in parties if p.safeguard is None]),
        ("draft text: recipient country ",
         [p.name for p in parties if p.country and p.country.provenance.is_draft]),
        ("draft text: transfer safeguard ",
         [p.name for p in parties if p.safeguard and p.safeguard.provenance.is_draft]),
    )
    if on_request and recipients.on_request.provenance.is_draft:
        reasons.append("draft text: recipients on request")
    return reasons


def officer_notes(policies: AccessPolicies, exported: Exported) -> list[str]:
    """What the officer is told about an access answer without holding it: recipients the
    answer says are available on request (the list Legal has not filled in)."""
    used = _recipients_used(policies.recipients, _entries(policies.catalogue, exported))
    on_request = [rid for rid, r in used if r.listing is Listing.ON_REQUEST]
    if not on_request:
        return []
    return [f"recipients list incomplete: available on request ({', '.join(on_request)})"]


def _reasons(*kinds: tuple[str, Iterable[str]]) -> list[str]:
    """``"<kind>a, b"`` for each kind with any items (each item once, in order)."""
    listed = ((kind, list(dict.fromkeys(items))) for kind, items in kinds)
    return [f"{kind}{', '.join(items)}" for kind, items in listed if items]


def _check_recipient_ids(path: Path, policies: AccessPolicies) -> None:
    known = policies.recipients.recipients
    for connector, categories in policies.catalogue.connectors.items():
        for category, entry in categories.items():
            unknown = [rid for rid in entry.recipients if rid not in known]
            if unknown:
                raise PolicyError(
                    f"{path}: connectors.{connector}.{category}, field 'recipients': "
                    f"unknown recipient {unknown[0]!r} (recipients.yaml names "
                    f"{', '.join(sorted(known))})"
                )
