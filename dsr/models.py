"""The rights request as the product receives it, validated before any workflow starts.

Validation errors name the field and the rule, never the rejected value: an identity that
fails validation is still personal data.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$")
CUSTOMER_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,63}$")
# Control characters (C0, DEL, C1) are refused like whitespace: no address or id holds them.
EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f-\x9f]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
CHANNEL_ID = re.compile(r"^[a-z_]{2,32}:[^\s\x00-\x1f\x7f-\x9f]{1,128}$")
CLOCK_SKEW = timedelta(minutes=5)
# The earliest year of a receipt intake accepts: an earlier one is a typo (and the deadline
# arithmetic and holiday calendars are not meant for it).
EARLIEST_YEAR = 2000
# An unknown field is named in errors only if its name looks like a field name: a key such as
# an email address or a phone number is personal data.
SHOWN_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")


class Right(StrEnum):
    """What each right asks of the connectors, and whether it needs verification: the table in
    ``dsr.rights``."""

    ACCESS = "access"
    PORTABILITY = "portability"
    RECTIFICATION = "rectification"
    ERASURE = "erasure"
    RESTRICTION = "restriction"
    OBJECTION = "objection"
    WITHDRAW_CONSENT = "withdraw_consent"
    MARKETING_OPT_OUT = "marketing_opt_out"
    OPT_OUT_SALE_SHARING = "opt_out_sale_sharing"
    LIMIT_SENSITIVE = "limit_sensitive"


class Jurisdiction(StrEnum):
    EU = "EU"
    DE = "DE"
    UK = "UK"
    US_CA = "US-CA"
    SG = "SG"
    AU = "AU"
    CO = "CO"
    BR = "BR"
    CN = "CN"


class Channel(StrEnum):
    PRIVACY_PANEL = "privacy_panel"
    EMAIL = "email"
    POST = "post"
    API = "api"


class RequesterKind(StrEnum):
    SUBJECT = "subject"
    AGENT = "agent"
    CONTROLLER = "controller"


class IdentityType(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    ACCOUNT_ID = "account_id"
    CHANNEL_ID = "channel_id"


class Language(StrEnum):
    EN = "en"
    ZH = "zh"


_IDENTITY_RULES = {
    IdentityType.EMAIL: (EMAIL, "an email address such as name@example.com"),
    IdentityType.PHONE: (PHONE, "a phone number in E.164 form such as +31612345678"),
    IdentityType.ACCOUNT_ID: (CUSTOMER_ACCOUNT, "letters, digits, '-' or '_' (2-64)"),
    IdentityType.CHANNEL_ID: (CHANNEL_ID, "'channel:id' such as whatsapp:12345"),
}


class StrictModel(BaseModel):
    # hide_input_in_errors: str(ValidationError) would otherwise quote the rejected input
    # (an identity, the requester's email, or the whole request) after "input_value=".
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True,
                              hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _unknown_keys_not_shown(cls, data: Any) -> Any:
        """pydantic names an unknown field by its key (``extra_forbidden``), in its own error
        text too: refuse keys that are not field names first, without naming them."""
        if isinstance(data, dict):
            unnamed = [key for key in data if key not in cls.model_fields
                       and not (isinstance(key, str) and SHOWN_FIELD_NAME.fullmatch(key))]
            if unnamed:
                raise ValueError(
                    f"{len(unnamed)} unknown field(s) not permitted (names not shown: a field "
                    "name is letters, digits and '_')")
        return data


class Identity(StrictModel):
    """One identifier of the data subject. Its value is personal data."""

    type: IdentityType
    value: Annotated[str, Field(min_length=1, max_length=254, repr=False)]

    @model_validator(mode="after")
    def _well_formed(self) -> Identity:
        pattern, expected = _IDENTITY_RULES[self.type]
        if not pattern.fullmatch(self.value):
            # Never echo the value: it is personal data.
            raise ValueError(f"{self.type.value} identity is malformed: expected {expected}")
        return self

    @property
    def normalised(self) -> str:
        value = self.value.lower() if self.type is IdentityType.EMAIL else self.value
        return f"{self.type.value}:{value}"


class Requester(StrictModel):
    """Who asks: the subject, an agent for the subject, or a customer for its end users."""

    kind: RequesterKind
    email: Annotated[str, Field(max_length=254, repr=False)]
    customer_account: str | None = Field(default=None, max_length=64)
    mandate_reference: str | None = Field(default=None, max_length=200)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not EMAIL.fullmatch(value):
            raise ValueError("requester email is malformed: expected name@example.com")
        return value

    @model_validator(mode="after")
    def _role_needs(self) -> Requester:
        if self.kind is RequesterKind.CONTROLLER and not self.customer_account:
            raise ValueError("a controller request needs customer_account (the customer acting)")
        if self.customer_account and not CUSTOMER_ACCOUNT.fullmatch(self.customer_account):
            raise ValueError("customer_account is malformed: letters, digits, '-' or '_'")
        if self.kind is RequesterKind.AGENT and not self.mandate_reference:
            raise ValueError("an agent's request needs mandate_reference (proof of the mandate)")
        return self


class Correction(StrictModel):
    """A corrected value for rectification: which field, and its new value."""

    field: Annotated[str, Field(pattern=r"^[a-z_]{2,40}$")]
    value: Annotated[str, Field(min_length=1, max_length=500, repr=False)]


class RightsRequest(StrictModel):
    """A rights request as received. Identities and the requester's email are personal data."""

    request_id: str
    rights: Annotated[list[Right], Field(min_length=1, max_length=10)]
    identities: Annotated[list[Identity], Field(min_length=1, max_length=10)]
    jurisdiction: Jurisdiction
    channel: Channel
    requester: Requester
    received_at: datetime
    language: Language = Language.EN
    is_child: bool = False
    corrections: Annotated[list[Correction], Field(max_length=20)] = []
    last_login_at: datetime | None = None
    notify_deferred_erasure: bool = True

    @field_validator("request_id")
    @classmethod
    def _request_id(cls, value: str) -> str:
        if not REQUEST_ID.fullmatch(value):
            raise ValueError(
                "request_id must be 3-64 letters, digits, '-' or '_', starting with a letter "
                "or digit (it becomes the workflow id, so it must not contain personal data)"
            )
        return value

    @field_validator("rights")
    @classmethod
    def _unique_rights(cls, value: list[Right]) -> list[Right]:
        if len(set(value)) != len(value):
            raise ValueError("rights are repeated: name each right once")
        return value

    @field_validator("received_at", "last_login_at", mode="before")
    @classmethod
    def _not_a_number(cls, value: object) -> object:
        # pydantic would take 1700000000 (or "1700000000") as a Unix time in UTC: a number in
        # a request file is far likelier a mistake than a time.
        if (isinstance(value, int | float) and not isinstance(value, bool)) or (
                isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1)
                .isdigit()):
            raise ValueError("needs an ISO time such as 2026-11-29T10:00:00+00:00, not a number")
        return value

    @field_validator("received_at", "last_login_at")
    @classmethod
    def _aware_and_past(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        """Intake passes ``context={"now": ...}``; workflow code, replaying history, does not."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("needs a time zone, for example 2026-11-29T10:00:00+00:00")
        now = (info.context or {}).get("now")
        if now is not None and value > now + CLOCK_SKEW:
            raise ValueError("is in the future")
        if now is not None and value.year < EARLIEST_YEAR:
            raise ValueError(f"is before the year {EARLIEST_YEAR}: check the year")
        try:
            return value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:30:00+01:00: before the first datetime
            raise ValueError("is out of range: check the year") from None

    @model_validator(mode="after")
    def _consistent(self) -> RightsRequest:
        if Right.RECTIFICATION in self.rights and not self.corrections:
            raise ValueError("rectification needs corrections (field and corrected value)")
        if self.corrections and Right.RECTIFICATION not in self.rights:
            raise ValueError("corrections are given but rectification is not requested")
        if self.channel is Channel.PRIVACY_PANEL:
            if not self.has(IdentityType.ACCOUNT_ID):
                raise ValueError("a privacy-panel request needs the account_id identity")
            if self.last_login_at is None:
                raise ValueError("a privacy-panel request needs last_login_at (the panel login)")
        return self

    def has(self, kind: IdentityType) -> bool:
        return any(identity.type is kind for identity in self.identities)

    @property
    def vouched_by_door(self) -> bool:
        """Whether the request says its door verified someone (a privacy-panel login time, a
        customer's API call): then it needs that door's signed assertion (``dsr.assertions``)."""
        return self.channel is Channel.API or (
            self.channel is Channel.PRIVACY_PANEL and self.last_login_at is not None)

    @property
    def customer_scope(self) -> str | None:
        """The customer whose end-user records a controller request may touch."""
        if self.requester.kind is RequesterKind.CONTROLLER:
            return self.requester.customer_account
        return None


def parse_request(data: object, now: datetime | None = None) -> RightsRequest:
    """Validate a submission at intake, refusing times in the future."""
    return RightsRequest.model_validate(data, context={"now": now or datetime.now(UTC)})
