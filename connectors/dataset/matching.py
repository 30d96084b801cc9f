"""How a dataset's identity columns are matched against the subject's identities: by the
product's normalised form (``Identity.normalised``: emails in lower case, phones in E.164),
whatever case or formatting the affiliate stored them in.

An email or phone column is matched by an expression over it (``lookup_expression``), written
with no bound parameter, so that an index on the same expression serves the lookup: an index
on the column as stored cannot (the schema check warns, naming the expression to index)."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import ColumnElement, Dialect, column, func, literal_column

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


def unformatted(stored: Any) -> Any:
    """A stored phone number without its formatting characters (in SQL; the characters written
    out, not bound, so that the expression is the same in every statement and in an index)."""
    expression = stored
    for character in PHONE_FORMATTING:
        expression = func.replace(expression, literal_column(f"'{character}'"),
                                  literal_column("''"))
    return expression


def lookup_expression(stored: Any, kind: IdentityType) -> Any:
    """What the lookup compares with the normalised values: an email in lower case without
    surrounding spaces, a phone without its formatting; other identities as stored."""
    if kind is IdentityType.EMAIL:
        return func.lower(func.trim(stored))
    if kind is IdentityType.PHONE:
        return unformatted(stored)
    return stored


def hashed(value: str) -> str:
    """A normalised identity as a ``hashed: sha256`` column keeps it."""
    return hashlib.sha256(value.encode()).hexdigest()


def lookup_sql(name: str, kind: IdentityType, dialect: Dialect,
               is_hashed: bool = False) -> str | None:
    """The SQL of the lookup expression of column ``name`` (as an index would name it), or
    None when the lookup compares the column as stored (a hashed one is)."""
    if is_hashed or kind not in (IdentityType.EMAIL, IdentityType.PHONE):
        return None
    return str(lookup_expression(column(name), kind).compile(dialect=dialect))


def identity_match(stored: Any, kind: IdentityType, values: list[str],
                   national: NationalPhones | None,
                   is_hashed: bool = False) -> ColumnElement[bool] | None:
    """The condition a stored identity of ``kind`` matches one of the normalised ``values``
    (hashed first for a hashed column); None when there is no value to match."""
    if not values:
        return None
    if is_hashed:
        return stored.in_(sorted(hashed(value) for value in values))  # type: ignore[no-any-return]
    if kind is IdentityType.PHONE:
        values = sorted({form for value in values for form in phone_forms(value, national)})
    return lookup_expression(stored, kind).in_(values)  # type: ignore[no-any-return]


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
