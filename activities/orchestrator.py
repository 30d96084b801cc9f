"""The orchestrator's own activities, built with their dependencies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from activities.anchor import AnchorActivities
from activities.answer import AnswerActivities
from activities.children import ChildActivities
from activities.legal_hold import LegalHoldActivities
from activities.mail import MailActivities
from activities.package import PackageActivities
from activities.policy import PolicyActivities
from activities.proof import ProofActivities
from activities.register import RegisterActivities
from activities.review import ReviewActivities
from activities.sweep import SweepActivities
from activities.verification import VerificationActivities
from dsr.blobstore import BlobStore
from dsr.settings import Settings


def orchestrator_activities(
    settings: Settings, engine: Engine, blobs: BlobStore
) -> list[Callable[..., Any]]:
    register = RegisterActivities(engine, settings.server_keys)
    policy = PolicyActivities(settings)
    verification = VerificationActivities(settings)
    answer = AnswerActivities(settings, engine)
    sweep = SweepActivities(settings, engine)
    return [
        register.record_intake,
        register.record_milestone,
        policy.snapshot,
        policy.compute,
        policy.extend,
        ChildActivities(settings).plan,
        MailActivities(settings).send_notice,
        verification.issue_codes,
        verification.check_code,
        LegalHoldActivities(settings, engine).assess,
        PackageActivities(settings, blobs).assemble,
        answer.send,
        ReviewActivities(settings).review,
        ProofActivities(engine, settings, blobs).purge_confirmations,
        AnchorActivities(engine, settings).anchor,
        sweep.sweep_plan,
        sweep.record_sweep,
    ]
