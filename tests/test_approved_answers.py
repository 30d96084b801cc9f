"""Every kind of answer, for every jurisdiction, in English and Chinese, rendered by the
product from the shipped policy files, is the approved one kept under tests/approved (EU in
full, each other law as its difference). A change of any text a person reads fails here until
it is reviewed and regenerated: python -m tests.approved_answers."""

from __future__ import annotations

from tests.approved_answers import APPROVED, approved_files


def test_every_rendered_answer_is_the_approved_one() -> None:
    expected = approved_files()
    kept = {path for path in APPROVED.rglob("*.*")}
    assert kept == set(expected), "regenerate: python -m tests.approved_answers"
    for path, text in expected.items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(APPROVED)} changed: review it, then python -m "
            "tests.approved_answers")


def test_the_approved_answers_show_what_each_law_changes() -> None:
    """What a lawyer reads in the diffs: the UK's complaint route and transfer wording, the
    CCPA's statement, and no extension promised where the law allows none."""
    uk = (APPROVED / "UK" / "access.en.diff").read_text(encoding="utf-8")
    assert "+Transfers outside the UK" in uk and "+If you disagree" in uk and "ICO" in uk
    assert "past 12 months" in (APPROVED / "US-CA" / "access.en.diff").read_text()
    assert not (APPROVED / "AU" / "extension.en.diff").exists()
    held = (APPROVED / "EU" / "held_for_review.en.txt").read_text(encoding="utf-8")
    assert "draft text: judicial remedy (EU)" in held
