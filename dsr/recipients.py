"""Who may receive the answer: only a recipient the request's verification vouches for.

The answer of an answered request discloses data (the access package's link, the facts about
each category of data held) or confirms what was done to it, so it goes only to an address
known to belong to whoever was verified, the first of:

1. for a customer acting as controller: the contact registered on its customer account,
   however the customer was verified (a code to that contact, its API credentials, a panel
   login) and whatever address it typed;
2. the requester's email, when it is (case-insensitively) an email identity of the request
   verified by a one-time code sent to it;
3. for a request that needed no verification (an opt-out of sale or sharing, a limit on
   sensitive data) about nothing but the requester's own email: that address, the mailbox the
   request is about;
4. for a subject verified through an account_id identity: that account's registered contact;
5. the requester's email, once an officer has confirmed it (``starter.py confirm-recipient``).

Otherwise the request waits for an officer. An email identity verified by hand does not count
for 2: the officer checked the person, not that the typed address reaches them.

The notices on the way (acknowledgement, extension, clarification) and the closing notices,
which disclose none of the data (a denial, an unverified closing, a cancellation naming only
the products already acted on), keep going to the requester's address as typed.

Pure and deterministic: the workflow applies it with the registered contact it looked up.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from dsr.models import IdentityType, RequesterKind, RightsRequest
from dsr.rights import needs_verification
from dsr.verification import Method, Target, identity_target_id


class RecipientBasis(StrEnum):
    """Why the address is a verified recipient (shown to officers: no address in it)."""

    CONTROLLER_CONTACT = "the customer's registered contact"
    VERIFIED_EMAIL = "the requester's email, verified by code"
    OWN_ADDRESS = "the requester's email, the only identity asked about"
    ACCOUNT_CONTACT = "the account's registered contact"
    OFFICER_CONFIRMED = "the requester's email, confirmed by an officer"


class Recipient(BaseModel):
    email: str = Field(repr=False)
    basis: RecipientBasis


def contact_account(request: RightsRequest, targets: list[Target]) -> str | None:
    """The customer account whose registered contact the answer would go to, to be looked up
    before ``verified_recipient``; None when no registered contact is needed."""
    if request.requester.kind is RequesterKind.CONTROLLER:
        return request.requester.customer_account
    if _verified_email(request, targets) or _own_address(request):
        return None
    return _verified_account(request, targets)


def verified_recipient(
    request: RightsRequest,
    targets: list[Target],
    registered_contact: str | None,
    confirmed_by_officer: bool,
) -> Recipient | None:
    """Where the answer may go; None: nowhere yet, an officer must confirm the requester's
    email. ``registered_contact`` is the registered email of ``contact_account``'s account,
    if it has one."""
    requester = request.requester.email
    if request.requester.kind is RequesterKind.CONTROLLER:
        if registered_contact:
            return Recipient(email=registered_contact, basis=RecipientBasis.CONTROLLER_CONTACT)
    elif _verified_email(request, targets):
        return Recipient(email=requester, basis=RecipientBasis.VERIFIED_EMAIL)
    elif _own_address(request):
        return Recipient(email=requester, basis=RecipientBasis.OWN_ADDRESS)
    elif registered_contact and _verified_account(request, targets):
        return Recipient(email=registered_contact, basis=RecipientBasis.ACCOUNT_CONTACT)
    if confirmed_by_officer:
        return Recipient(email=requester, basis=RecipientBasis.OFFICER_CONFIRMED)
    return None


def _verified_email(request: RightsRequest, targets: list[Target]) -> bool:
    proved = _proved_identities(targets, {Method.CODE})
    return any(
        identity.type is IdentityType.EMAIL and _same_address(identity.value, request)
        for index, identity in enumerate(request.identities)
        if identity_target_id(index) in proved
    )


def _own_address(request: RightsRequest) -> bool:
    return not needs_verification(request.rights) and all(
        identity.type is IdentityType.EMAIL and _same_address(identity.value, request)
        for identity in request.identities
    )


def _verified_account(request: RightsRequest, targets: list[Target]) -> str | None:
    """The first account_id identity verified (by a panel login, a code to its registered
    contact, or by hand: its registered contact is the account holder's either way)."""
    proved = _proved_identities(targets, set(Method))
    return next(
        (
            identity.value
            for index, identity in enumerate(request.identities)
            if identity.type is IdentityType.ACCOUNT_ID and identity_target_id(index) in proved
        ),
        None,
    )


def _proved_identities(targets: list[Target], methods: set[Method]) -> set[str]:
    return {t.target_id for t in targets if t.verified and t.verified_by in methods}


def _same_address(value: str, request: RightsRequest) -> bool:
    return value.lower() == request.requester.email.lower()
