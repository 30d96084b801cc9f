"""The answer to the person, and the confirmation record kept as proof that it was sent.

Sending is idempotent: once the confirmation record exists, a retry returns it and sends
nothing, so a request never gets two answers.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from temporalio import activity

from activities.interfaces.answer import SEND_ANSWER, AnswerInput, AnswerSent
from dsr import package_links
from dsr.access_facts import answer_facts, load_access_policies
from dsr.catalogue import access_statement_for, authority_for, rights_for
from dsr.codec import EncryptionCodec, seal
from dsr.deadline_policy import load_deadline_policy
from dsr.emails import Action, AnswerContext, ProductOutcome, RenderedEmail, render
from dsr.keyring import load_keyring
from dsr.mailer import send_email
from dsr.models import Jurisdiction, Language, Right
from dsr.register import ConfirmationRecord
from dsr.retention import RetentionPolicy, keep_until, load_retention_policy
from dsr.settings import Settings


class AnswerActivities:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._settings = settings
        self._engine = engine
        self._codec = EncryptionCodec(load_keyring(settings))  # the proof is kept encrypted

    @activity.defn(name=SEND_ANSWER.name)
    async def send(self, answer: AnswerInput) -> AnswerSent:
        request_id = answer.request.request_id
        existing = self._confirmation(request_id)
        if existing is not None:
            return AnswerSent(message_id=existing.message_id, sent_at=existing.sent_at,
                              retain_until=existing.retain_until, already_sent=True)
        mail = self.render(answer)
        message_id = f"<{answer.kind}.{request_id}@dsr>"
        to = answer.recipient or answer.request.requester.email
        await send_email(self._settings, to=to, subject=mail.subject, body=mail.body,
                         message_id=message_id)
        sent = AnswerSent(message_id=message_id, sent_at=answer.answered_at,
                          retain_until=self._retain_until(answer.answered_at))
        self._store(request_id, answer.kind, sent, _as_bytes(mail.subject, mail.body, message_id))
        return sent

    def render(self, answer: AnswerInput) -> RenderedEmail:
        """The answer as the person reads it (also the approved examples, tests/approved)."""
        return render(answer.kind, answer.request.language, **self._context(answer))

    def _context(self, answer: AnswerInput) -> dict[str, object]:
        request = answer.request
        policies = load_access_policies(self._settings.policy_dir)
        facts = answer_facts(policies, answer.exported, request.jurisdiction, request.language)
        package_link, package_until = self._package_link(answer)
        retention = load_retention_policy(self._settings.policy_dir / "retention.yaml")
        context = AnswerContext(
            request_id=request.request_id,
            rights=request.rights,
            jurisdiction=request.jurisdiction,
            language=request.language,
            received_on=self._local_day(request.received_at, request.jurisdiction),
            answered_on=self._local_day(answer.answered_at, request.jurisdiction),
            outcomes=answer.outcomes,
            retained=answer.retained,
            after_erasure=after_erasure(answer.outcomes, retention, request.language),
            package_link=package_link,
            package_until=package_until,
            categories=facts.categories,
            data_recipients=facts.data_recipients,
            recipients_on_request=facts.recipients_on_request,
            transfers=facts.transfers,
            being_confirmed=facts.being_confirmed,
            category_names=policies.catalogue.names(request.language),
            complaint=authority_for(request.jurisdiction, request.language),
            your_rights=(rights_for(request.jurisdiction, request.language)
                         if Right.ACCESS in request.rights else None),
            access_statement=(access_statement_for(request.jurisdiction, request.language)
                              if Right.ACCESS in request.rights else None),
            reason=answer.reason,
            referred_to=answer.referred_to,
        )
        return context.model_dump()

    def _local_day(self, moment: datetime, jurisdiction: Jurisdiction) -> date:
        """The day of ``moment`` in the jurisdiction's time zone (deadlines.yaml), as the
        person counts it: a UK request at 23:30 UTC in summer came in the next day."""
        policy = load_deadline_policy(self._settings.policy_dir / "deadlines.yaml")
        return local_day(moment, policy.jurisdictions[jurisdiction].time_zone)

    def _package_link(self, answer: AnswerInput) -> tuple[str | None, date | None]:
        """The package's download page and its last day; issued once, so a retried answer
        carries the same link."""
        if answer.package_ref is None:
            return None, None
        link = package_links.issue(self._engine, self._settings.server_keys,
                                   answer.request.request_id, answer.answered_at,
                                   self._settings.package_link_days)
        return (package_links.landing_url(self._settings.public_base_url, link.token),
                package_links.last_day(link))

    def _retain_until(self, sent_at: datetime) -> datetime:
        policy = load_retention_policy(self._settings.policy_dir / "retention.yaml")
        until = keep_until(policy, "orchestrator", "request_confirmation", sent_at)
        if until is None:
            raise ValueError("the retention policy has no rule for request confirmations")
        return until

    def _confirmation(self, request_id: str) -> ConfirmationRecord | None:
        with Session(self._engine, expire_on_commit=False) as session:
            return session.get(ConfirmationRecord, request_id)

    def _store(self, request_id: str, kind: str, sent: AnswerSent, message: bytes) -> None:
        with Session(self._engine) as session, session.begin():
            session.add(ConfirmationRecord(
                request_id=request_id, message_id=sent.message_id, kind=kind,
                sent_at=sent.sent_at, retain_until=sent.retain_until,
                message=seal(self._codec, message),
            ))


def local_day(moment: datetime, time_zone: str) -> date:
    """The calendar day of ``moment`` in ``time_zone`` (a naive moment is taken as UTC, as
    workflows speak it)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(time_zone)).date()


def after_erasure(
    outcomes: list[ProductOutcome], policy: RetentionPolicy, language: Language
) -> list[str]:
    """What an erasure left behind, for each connector that erased the person's data here
    (the marketing connector keeps a suppression entry on every erasure it does)."""
    erased = {outcome.connector for outcome in outcomes if outcome.action is Action.ERASED}
    return [
        policy.after_erasure[connector].in_language(language)
        for connector in sorted(erased & policy.after_erasure.keys())
    ]


def _as_bytes(subject: str, body: str, message_id: str) -> bytes:
    message = EmailMessage()
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content(body)
    return message.as_bytes()
