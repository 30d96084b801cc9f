"""The officer service's actions on Web UI sessions (``dsr.sessions``): an officer with a
reading role opens one for themself; everyone lists and ends their own; an administrator
also lists and ends anyone's. Each opening and ending is in the ledger under who signed."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import BaseModel, StringConstraints

from dsr import sessions
from dsr.assertions import Principal, Role
from services.codec_server import codec_endpoint, session_link
from services.officer_actions import Action, ActionRefused, Context, NoArguments

SESSIONS = "ui-sessions"  # the target of session actions


class SessionQuery(BaseModel):
    """Whose sessions: one's own by default; ``everyone`` or another ``officer`` is for
    administrators."""

    model_config = {"extra": "forbid"}
    officer: Annotated[str, StringConstraints(min_length=1, max_length=80)] | None = None
    everyone: bool = False


class SessionEnd(BaseModel):
    model_config = {"extra": "forbid"}
    session_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]


def _whose(principal: Principal, query: SessionQuery) -> str | None:
    """The officer whose sessions ``query`` names (None: everyone's), if ``principal`` may."""
    if principal.role is Role.ADMINISTRATOR:
        return None if query.everyone and query.officer is None else (
            query.officer or principal.principal_id)
    if query.everyone or query.officer not in (None, principal.principal_id):
        raise ActionRefused("only an administrator lists or ends other officers' sessions; "
                            "leave out --officer for your own", 403)
    return principal.principal_id


async def open_ui_session(ctx: Context, principal: Principal, _: NoArguments) -> Any:
    hours = ctx.settings.ui_session_hours
    opened = await asyncio.to_thread(sessions.open_session, ctx.engine, ctx.settings.server_keys,
                                     principal.principal_id, hours)
    return {"session": opened.session_id, "officer": principal.principal_id, "hours": hours,
            "expires_at": opened.expires_at.isoformat(),
            "link": session_link(ctx.settings, opened.token),
            "codec_endpoint": codec_endpoint(ctx.settings), "web_ui": ctx.settings.web_ui_url}


async def list_ui_sessions(ctx: Context, principal: Principal, query: SessionQuery) -> Any:
    live = await asyncio.to_thread(sessions.live_sessions, ctx.engine, _whose(principal, query))
    return [{"session": s.session_id, "officer": s.officer, "link_used": s.link_used,
             "expires_at": s.expires_at.isoformat()} for s in live]


async def end_ui_session(ctx: Context, principal: Principal, end: SessionEnd) -> Any:
    owner = None if principal.role is Role.ADMINISTRATOR else principal.principal_id
    ended = await asyncio.to_thread(sessions.revoke, ctx.engine, ctx.settings.server_keys,
                                    end.session_id, principal.principal_id, None, owner)
    if not ended:
        raise ActionRefused(f"no live session {end.session_id}"
                            + (" of yours" if owner else "")
                            + ": unknown, expired or already ended", 404)
    return {"ended": 1}


async def end_ui_sessions(ctx: Context, principal: Principal, query: SessionQuery) -> Any:
    ended = await asyncio.to_thread(sessions.revoke_all, ctx.engine, ctx.settings.server_keys,
                                    principal.principal_id, _whose(principal, query))
    return {"ended": ended}


ACTIONS: dict[str, Action] = {
    "open_ui_session": Action(NoArguments, lambda _: SESSIONS, open_ui_session),
    "list_ui_sessions": Action(SessionQuery, lambda _: SESSIONS, list_ui_sessions),
    "end_ui_session": Action(SessionEnd, lambda _: SESSIONS, end_ui_session),
    "end_ui_sessions": Action(SessionQuery, lambda _: SESSIONS, end_ui_sessions),
}
