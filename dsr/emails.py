"""Emails to requesters and privacy officers, rendered from plain-text Jinja2 templates.

Templates live in ``dsr/templates/<language>/<name>.txt.j2``; the first line is
``Subject: ...``, then a blank line, then the body. A template missing in the request's
language falls back to English. Undefined variables are errors (``StrictUndefined``), so a
context that lacks a field fails loudly instead of sending a half-empty email.

Each template has a context model: the requester's below, the officer's in
``dsr.officer_emails`` (no personal data: request ids, connector names, counts and dates).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    pass_context,
)
from jinja2.runtime import Context
from pydantic import BaseModel, Field, model_validator

from dsr.catalogue import CategoryFacts
from dsr.models import Jurisdiction, Language, Right, StrictModel
from dsr.retention import LocalText, RetainedPart, read_policy_file
from dsr.sharing import OnRequestFacts, RecipientFacts, TransferFacts

TEMPLATE_DIR = Path(__file__).parent / "templates"
WORDS_FILE = TEMPLATE_DIR / "words.yaml"
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


class Action(StrEnum):
    """What was done in one connector, as the answer reports it."""

    EXPORTED = "exported"
    ERASED = "erased"
    RECTIFIED = "rectified"
    RESTRICTED = "restricted"
    OBJECTION_RECORDED = "objection recorded"
    CONSENT_WITHDRAWN = "consent withdrawn"
    UNSUBSCRIBED = "unsubscribed from marketing"
    NOTHING_HELD = "nothing held"
    DONE_BY_HAND = "done by hand"
    INSTRUCTED = "instructed"
    SKIPPED = "skipped"
    NOT_COMPLETED = "not completed"


class RenderedEmail(BaseModel):
    subject: str
    body: str
    language: Language  # the template's language (English when the requested one is missing)


# --- contexts ------------------------------------------------------------------------------


class EmailContext(BaseModel):
    """What every template gets. Optional fields may be left out: the text adapts."""

    template: ClassVar[str]
    request_id: str
    language: Language = Language.EN


class AcknowledgementContext(EmailContext):
    template = "acknowledgement"
    rights: list[Right]
    due_on: date
    received_on: date | None = None
    jurisdiction: Jurisdiction | None = None  # US-CA adds the no-discrimination promise
    verification_needed: bool = False
    # The latest day an extension may reach under the request's jurisdiction and rights;
    # None: no extension is allowed, and the acknowledgement promises none.
    extension_until: date | None = None


class VerificationCodeContext(EmailContext):
    template = "verification_code"
    code: str
    valid_until: datetime
    attempts: int | None = None  # wrong codes allowed before verification locks


class ReferralContext(EmailContext):
    """To a customer's registered contact: an end user wrote to us directly about data the
    customer controls. It names the identities: the controller must be able to act."""

    template = "referral"
    customer_account: str
    rights: list[Right]
    identities: list[str]
    received_on: date


class InstructionContext(EmailContext):
    """To a recipient without an API: act on this person's data, and confirm."""

    template = "instruction"
    operations: list[str]
    identities: list[str]
    customer_account: str | None = None


class ExtensionContext(EmailContext):
    template = "extension_notice"
    due_on: date  # the new due date
    reason: str  # GDPR Art. 12(3): an extension states its reasons
    received_on: date | None = None


class ClarificationContext(EmailContext):
    template = "clarification"
    question: str  # what more we need
    clock_stops: bool = False  # the deadline waits for the reply (e.g. UK)
    reply_by: date | None = None
    received_on: date | None = None


class ProductOutcome(BaseModel):
    connector: str
    products: list[str]
    action: Action
    records: dict[str, int] = Field(default_factory=dict)  # category -> records
    note: str | None = None


class AnswerContext(EmailContext):
    """The closing email: the answer, and (as subclasses) a denial, an unverified closing or a
    cancellation. ``answered_on`` is the day the request closed."""

    template = "answer"
    rights: list[Right]
    jurisdiction: Jurisdiction
    received_on: date
    answered_on: date
    outcomes: list[ProductOutcome] = Field(default_factory=list)
    retained: list[RetainedPart] = Field(default_factory=list)
    # What an erasure left behind (a suppression entry), and why, in the reader's language.
    after_erasure: list[str] = Field(default_factory=list)
    # The access package's download page, and the last day its link works.
    package_link: str | None = None
    package_until: date | None = None
    categories: list[CategoryFacts] = Field(default_factory=list)  # facts, for access
    category_names: dict[str, str] = Field(default_factory=dict)  # Catalogue.names(language)
    # For access, once per answer (dsr.access_facts.answer_facts): each recipient the
    # categories name, where the actual ones are available on request, the transfers text,
    # and whether any fact above is stated as being confirmed.
    data_recipients: list[RecipientFacts] = Field(default_factory=list)
    recipients_on_request: OnRequestFacts | None = None
    transfers: TransferFacts | None = None
    being_confirmed: bool = False
    complaint: str  # authority_for(jurisdiction, language)
    # The person's other rights (rights_for): stated in every access answer.
    your_rights: str | None = None
    # What the law adds to an access answer (access_statement_for; CCPA: sold, shared, disclosed).
    access_statement: str | None = None
    reason: str | None = None  # an officer's reason: a denial's, or a cancellation's
    referred_to: list[str] = Field(default_factory=list)  # customers controlling the data


class DenialContext(AnswerContext):
    template = "denial"
    reason: str


class UnverifiedContext(AnswerContext):
    template = "unverified"


class CancelledContext(AnswerContext):
    """``outcomes`` says what had already been done before the cancellation."""

    template = "cancelled"


class DeferredErasureContext(EmailContext):
    """Data kept for a duty or a hold, erased when it ended; ``erased`` lines name products
    and categories, never records."""

    template = "deferred_erasure"
    erased_on: date
    erased: list[str]
    remaining: bool = False


# --- words ---------------------------------------------------------------------------------


class Words(StrictModel):
    rights: dict[Right, LocalText]
    actions: dict[Action, LocalText]
    products: dict[str, dict[Language, str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete(self) -> Words:
        missing = [r.value for r in Right if r not in self.rights]
        missing += [a.value for a in Action if a not in self.actions]
        if missing:
            raise ValueError(f"words missing for: {', '.join(missing)}")
        return self

    def in_language(self, language: Language) -> dict[str, dict[str, str]]:
        return {
            "rights": {r.value: text.in_language(language) for r, text in self.rights.items()},
            "actions": {a.value: text.in_language(language) for a, text in self.actions.items()},
            "products": {
                name: names[language] for name, names in self.products.items() if language in names
            },
        }


@cache
def load_words() -> Words:
    return read_policy_file(WORDS_FILE, Words)


# --- rendering -----------------------------------------------------------------------------


def render_email(context: EmailContext) -> RenderedEmail:
    """Render the template a context model belongs to, in the context's language."""
    return render(context.template, context.language, **context.model_dump())


def render(template: str, language: Language, /, **context: Any) -> RenderedEmail:
    """Render ``<language>/<template>.txt.j2`` (English if missing) into subject and body."""
    used, source = _template(template, language)
    words = load_words().in_language(used)
    text = source.render({**context, "language": used, "words": words})
    return _split(text, f"{used.value}/{template}", used)


def _template(name: str, language: Language) -> tuple[Language, Template]:
    for candidate in dict.fromkeys((language, Language.EN)):
        try:
            return candidate, _environment().get_template(f"{candidate.value}/{name}.txt.j2")
        except TemplateNotFound:
            continue
    raise TemplateNotFound(f"{name}.txt.j2 (neither {language.value} nor en)")


def _split(text: str, name: str, language: Language) -> RenderedEmail:
    first, _, rest = text.partition("\n")
    if not first.startswith("Subject: ") or not rest.startswith("\n"):
        raise TemplateError(f"{name}: must start with 'Subject: ...' and a blank line")
    lines = [line.rstrip() for line in rest[1:].strip("\n").splitlines()]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"
    return RenderedEmail(
        subject=first.removeprefix("Subject: ").strip(), body=body, language=language
    )


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        undefined=StrictUndefined,
        autoescape=False,  # plain text, never HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(day=_day, moment=_moment)
    environment.globals.update(category=_category, product=_product)
    return environment


# --- template helpers ----------------------------------------------------------------------


@pass_context
def _day(context: Context, value: date | str) -> str:
    """A date the way the reader writes it: ``31 August 2026`` or ``2026年8月31日``."""
    day = _as_date(value)
    if context["language"] == Language.ZH:
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


@pass_context
def _moment(context: Context, value: datetime | str) -> str:
    """A moment in UTC: ``31 August 2026, 14:05 UTC`` or ``2026年8月31日 14:05(UTC)``."""
    moment = _as_moment(value)
    if moment is None:
        return str(value)
    moment = moment.astimezone(UTC) if moment.tzinfo else moment
    day = _day(context, moment.date())
    if context["language"] == Language.ZH:
        return f"{day} {moment:%H:%M}(UTC)"
    return f"{day}, {moment:%H:%M} UTC"


@pass_context
def _category(context: Context, connector: str, category: str) -> str:
    """A category's name from the context's ``category_names``, else a readable id."""
    names = context.get("category_names") or {}
    return str(names.get(f"{connector}/{category}", category.replace("_", " ")))


@pass_context
def _product(context: Context, connector: str) -> str:
    """The products a connector serves, from the context's outcomes, in the reader's words."""
    words = context["words"]["products"]
    for outcome in context.get("outcomes") or []:
        if _field(outcome, "connector") == connector:
            return ", ".join(words.get(name, name) for name in _field(outcome, "products"))
    return connector


def _field(item: Any, name: str) -> Any:
    """A field of a dumped model (a dict) or of the model itself."""
    return item[name] if isinstance(item, dict) else getattr(item, name)


def _as_date(value: date | str) -> date:
    if isinstance(value, str):
        return datetime.fromisoformat(value).date()
    return value.date() if isinstance(value, datetime) else value


def _as_moment(value: datetime | str) -> datetime | None:
    """A datetime, or None for a text that is already written out (kept as given)."""
    if not isinstance(value, str):
        return value
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
