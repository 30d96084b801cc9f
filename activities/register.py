"""Activities that keep the request register: the long-term record of every request."""

from __future__ import annotations

from sqlalchemy import Engine
from temporalio import activity

from activities.interfaces.register import RECORD_INTAKE, RECORD_MILESTONE, Intake, Registered
from dsr import register
from dsr.register import Milestone, RegisterKeys
from dsr.serverkeys import ServerKeys


class RegisterActivities:
    def __init__(self, engine: Engine, keys: ServerKeys) -> None:
        self._engine = engine
        self._server_keys = keys
        self._keys = RegisterKeys.from_secret(keys.secret)

    @activity.defn(name=RECORD_INTAKE.name)
    def record_intake(self, intake: Intake) -> Registered:
        started = activity.info().started_time
        duplicates = register.record_intake(self._engine, intake.request, self._server_keys,
                                            started, intake.submitted_by)
        return Registered(possible_duplicate_of=duplicates)

    @activity.defn(name=RECORD_MILESTONE.name)
    def record_milestone(self, milestone: Milestone) -> None:
        register.record_milestone(self._engine, milestone, self._keys)
