"""Who must be verified, and how, before data is disclosed or deleted.

Pure rules, deterministic, so the workflow can apply them directly. Each identity whose data
will be disclosed or deleted is verified on its own: a code sent to an email address proves
nothing about a phone number.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel

from dsr.models import Channel, IdentityType, RequesterKind, Right, RightsRequest
from dsr.rights import needs_verification


class Method(StrEnum):
    ACCOUNT_LOGIN = "account_login"
    API_CREDENTIALS = "api_credentials"
    CODE = "code"
    MANUAL = "manual"


class Target(BaseModel):
    """One thing to verify. ``identity_index`` points into the request's identities (the code
    goes to that address); ``registered_account`` means the code goes to that customer
    account's registered contact. ``verified_by`` is what proved it: the planned method, or
    ``MANUAL`` when an officer verified it by hand instead."""

    target_id: str
    method: Method
    identity_index: int | None = None
    registered_account: str | None = None
    verified: bool = False
    how: str | None = None
    verified_by: Method | None = None


def plan_verification(request: RightsRequest, now: datetime, reauth_minutes: int) -> list[Target]:
    if not needs_verification(request.rights):
        return []
    fresh_login = _fresh_login(request, now, reauth_minutes)
    if request.channel is Channel.POST:
        return [Target(target_id="postal", method=Method.MANUAL)]
    if request.requester.kind is RequesterKind.AGENT:
        return [Target(target_id="mandate", method=Method.MANUAL)]
    if request.requester.kind is RequesterKind.CONTROLLER:
        return [_controller_target(request, fresh_login)]
    return [_subject_target(request, i, fresh_login) for i in range(len(request.identities))]


def _fresh_login(request: RightsRequest, now: datetime, reauth_minutes: int) -> bool:
    """A panel login counts; an erasure needs one within the last ``reauth_minutes``."""
    if request.channel is not Channel.PRIVACY_PANEL or request.last_login_at is None:
        return False
    if Right.ERASURE not in request.rights:
        return True
    return now - request.last_login_at <= timedelta(minutes=reauth_minutes)


def _controller_target(request: RightsRequest, fresh_login: bool) -> Target:
    account = request.requester.customer_account
    if request.channel is Channel.API:
        return _done("controller", Method.API_CREDENTIALS, "customer's authenticated API call")
    if fresh_login:
        return _done("controller", Method.ACCOUNT_LOGIN, "customer's privacy-panel login")
    return Target(target_id="controller", method=Method.CODE, registered_account=account)


def identity_target_id(index: int) -> str:
    """The target verifying the request's identity at ``index``, for a subject's request."""
    return f"identity-{index + 1}"


def _subject_target(request: RightsRequest, index: int, fresh_login: bool) -> Target:
    identity = request.identities[index]
    target_id = identity_target_id(index)
    if identity.type is IdentityType.ACCOUNT_ID:
        if fresh_login:
            return _done(target_id, Method.ACCOUNT_LOGIN, "privacy-panel login")
        return Target(target_id=target_id, method=Method.CODE, registered_account=identity.value)
    if identity.type is IdentityType.EMAIL:
        return Target(target_id=target_id, method=Method.CODE, identity_index=index)
    # No SMS gateway or channel-specific messaging: an officer verifies these by hand.
    return Target(target_id=target_id, method=Method.MANUAL)


def _done(target_id: str, method: Method, how: str) -> Target:
    return Target(target_id=target_id, method=method, verified=True, how=how, verified_by=method)
