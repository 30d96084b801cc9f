"""Anchoring the audit ledger's head outside the database (``dsr.ledger.anchor``, into the
store ``DSR_LEDGER_ANCHOR_URL`` names), for the hourly Schedule."""

from __future__ import annotations

from sqlalchemy import Engine
from temporalio import activity

from activities.interfaces.anchor import ANCHOR_LEDGER, AnchorInput
from dsr import ledger
from dsr.settings import Settings


class AnchorActivities:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._key = ledger.ledger_key(settings.secret)
        self._anchors = ledger.anchor_store(settings)

    @activity.defn(name=ANCHOR_LEDGER.name)
    def anchor(self, request: AnchorInput) -> ledger.Anchor:
        return ledger.anchor(self._engine, self._key, self._anchors, request.as_of)
