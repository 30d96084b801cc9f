"""How a dataset's identity columns are matched against the subject's identities: by the
product's normalised form (``Identity.normalised``: emails in lower case, phones in E.164),
whatever case or formatting the affiliate stored them in."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func

from connectors.dataset.model import NationalPhones
from dsr.models import Identity, IdentityType

# Characters people type inside phone numbers; ignored when matching a stored number.
PHONE_FORMATTING = (" ", "-", "(", ")", ".", "/", "\u00a0")


def normalised_values(identities: list[Identity], kind: IdentityType) -> list[str]:
    """The subject's identities of one type, in the product's normalised form (its value
    without the ``type:`` prefix of ``Identity.normalised``)."""
    return sorted({identity.normalised.partition(":")[2] for identity in identities
                   if identity.type is kind})


def phone_forms(e164: str, national: NationalPhones | None) -> list[str]:
    """The forms an E.164 number may be stored in, formatting removed: as is, with the 00
    international prefix and, for the dataset's own country, in national form."""
    forms = [e164, "00" + e164[1:]]
    if national is not None and e164.startswith(national.country_code):
        forms.append(national.trunk_prefix + e164[len(national.country_code):])
    return forms


def unformatted(column: Any) -> Any:
    """A stored phone number without its formatting characters (in SQL)."""
    expression = column
    for character in PHONE_FORMATTING:
        expression = func.replace(expression, character, "")
    return expression


def identity_match(column: Any, kind: IdentityType, values: list[str],
                   national: NationalPhones | None) -> ColumnElement[bool] | None:
    """The condition a stored identity of ``kind`` matches one of the normalised ``values``;
    None when there is no value to match."""
    if not values:
        return None
    if kind is IdentityType.EMAIL:
        return func.lower(func.trim(column)).in_(values)
    if kind is IdentityType.PHONE:
        forms = sorted({form for value in values for form in phone_forms(value, national)})
        return unformatted(column).in_(forms)  # type: ignore[no-any-return]
    return column.in_(values)  # type: ignore[no-any-return]


def stored_form(kind: IdentityType | None, value: Any) -> str:
    """A stored value as hashed into a pseudonym: an identity in its normalised form (so one
    person's pseudonym is the same in every table), anything else as text."""
    text = str(value)
    if kind is IdentityType.EMAIL:
        return text.strip().lower()
    if kind is IdentityType.PHONE:
        for character in PHONE_FORMATTING:
            text = text.replace(character, "")
    return text
