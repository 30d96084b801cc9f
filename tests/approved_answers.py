"""Rendered answers of every kind, for every jurisdiction, in English and Chinese, through the
product's own code and the shipped policy files: the approved examples a lawyer reads.

The EU's are kept whole (``tests/approved/EU/<kind>.<language>.txt``); every other
jurisdiction's as a diff against the EU's (``tests/approved/<J>/<kind>.<language>.diff``),
and only where it differs, so a lawyer reads what each law changes. Regenerate after a
reviewed change of a text:

    python -m tests.approved_answers
"""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

from activities.answer import AnswerActivities, AnswerInput
from activities.review import ReviewActivities
from dsr.database import make_engine
from dsr.deadline_policy import load_deadline_policy
from dsr.deadlines import DeadlineQuery, compute_deadline
from dsr.emails import Action, ProductOutcome, RenderedEmail, render
from dsr.models import Jurisdiction, Language, RightsRequest, parse_request
from dsr.retention import RetainedPart, load_retention_policy
from dsr.settings import POLICY_DIR, Settings

APPROVED = Path(__file__).parent / "approved"
PARENT = Jurisdiction.EU
RECEIVED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
ANSWERED = datetime(2026, 12, 18, 15, 0, tzinfo=UTC)
EXPORTED = {"sms": ["phone_number", "traffic_data"],
            "customer_account": ["account_profile", "invoices"]}
KINDS = ("acknowledgement", "access", "erasure", "denial", "extension", "unverified",
         "held_for_review")


def _request(jurisdiction: Jurisdiction, language: Language, rights: list[str]) -> RightsRequest:
    return parse_request({
        "request_id": "REQ-EXAMPLE-1", "rights": rights, "jurisdiction": jurisdiction.value,
        "language": language.value, "channel": "email", "received_at": RECEIVED.isoformat(),
        "identities": [{"type": "phone", "value": "+31612345678"}],
        "requester": {"kind": "subject", "email": "person@example.com"}})


def _answers(request: RightsRequest) -> dict[str, AnswerInput]:
    def answer(kind: str = "answer", **fields: object) -> AnswerInput:
        return AnswerInput.model_validate(
            {"request": request, "kind": kind, "answered_at": ANSWERED} | fields)

    access = request.model_copy(update={"rights": ["access"]})
    erasure = request.model_copy(update={"rights": ["erasure"]})
    kept = RetainedPart(connector="sms", category="traffic_data", rule_id="sms-voice-integrity",
                        basis="", records_until=datetime(2026, 6, 18, tzinfo=UTC),
                        until=date(2027, 6, 10))
    return {
        "access": answer(request=access, exported=EXPORTED, outcomes=[
            ProductOutcome(connector="sms", products=["SMS"], action=Action.EXPORTED,
                           records={"phone_number": 1, "traffic_data": 412})]),
        "erasure": answer(request=erasure, retained=[_with_basis(kept)], outcomes=[
            ProductOutcome(connector="sms", products=["SMS"], action=Action.ERASED,
                           records={"message_content": 97}),
            ProductOutcome(connector="marketing", products=["Marketing"], action=Action.ERASED,
                           records={"prospect_profile": 1})]),
        "denial": answer("denial", reason="The same request was answered on 2 December."),
        "unverified": answer("unverified"),
    }


def _with_basis(part: RetainedPart) -> RetainedPart:
    rule = next(r for r in load_retention_policy().rules if r.id == part.rule_id)
    return part.model_copy(update={"basis": rule.basis.en,
                                   "basis_translations": rule.basis.translations()})


def _notices(request: RightsRequest, review: ReviewActivities,
             access: AnswerInput) -> dict[str, RenderedEmail]:
    deadline = compute_deadline(DeadlineQuery(jurisdiction=request.jurisdiction,
                                              rights=["access"], received_at=RECEIVED),
                                load_deadline_policy())
    language = request.language
    notices = {
        "acknowledgement": render(
            "acknowledgement", language, request_id=request.request_id, rights=["access"],
            due_on=deadline.due_on, received_on=deadline.received_on,
            jurisdiction=request.jurisdiction, verification_needed=True,
            extension_until=deadline.extension_limit_on),
    }
    if deadline.extension_limit_on is not None:  # AU, BR access: none in law
        notices["extension"] = render(
            "extension_notice", language, request_id=request.request_id,
            due_on=deadline.extension_limit_on, received_on=deadline.received_on,
            reason="Your request covers seven products.")
    if language is Language.EN:  # the officer's email
        notices["held_for_review"] = render(
            "officer_review", Language.EN, request_id=request.request_id,
            reasons=review.review(access).reasons)
    return notices


def rendered() -> Iterator[tuple[Jurisdiction, str, Language, str]]:
    """(jurisdiction, kind, language, the email as sent) for every example."""
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), policy_dir=POLICY_DIR,
                            hmac_key="approved-answers-key-5c1e9a7f3b2d8e4a6c0f7d2b")
        answers = AnswerActivities(settings, make_engine(settings.app_database_url))
        review = ReviewActivities(settings)
        for jurisdiction in Jurisdiction:
            for language in Language:
                request = _request(jurisdiction, language, ["access"])
                inputs = _answers(request)
                mails = {kind: answers.render(answer) for kind, answer in inputs.items()}
                mails |= _notices(request, review, inputs["access"])
                for kind in KINDS:
                    if kind not in mails:
                        continue
                    mail = mails[kind]
                    yield jurisdiction, kind, language, f"Subject: {mail.subject}\n\n{mail.body}"


def approved_files() -> dict[Path, str]:
    """The files ``tests/approved`` should hold: EU whole, others as diffs where they differ."""
    examples = {(j, kind, lang): text for j, kind, lang, text in rendered()}
    files: dict[Path, str] = {}
    for (jurisdiction, kind, language), text in examples.items():
        name = f"{kind}.{language.value}"
        if jurisdiction is PARENT:
            files[APPROVED / PARENT.value / f"{name}.txt"] = text
            continue
        parent = examples.get((PARENT, kind, language), "")
        diff = "".join(difflib.unified_diff(
            parent.splitlines(keepends=True), text.splitlines(keepends=True),
            fromfile=f"{PARENT.value}/{name}", tofile=f"{jurisdiction.value}/{name}", n=1))
        if diff:
            files[APPROVED / jurisdiction.value / f"{name}.diff"] = diff
    return files


def main() -> None:
    files = approved_files()
    for old in APPROVED.rglob("*.*"):
        if old not in files:
            old.unlink()
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print(f"{len(files)} approved examples in {APPROVED}")


if __name__ == "__main__":
    main()
