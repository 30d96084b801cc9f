"""Bearer tokens from the identity provider the Web UI signs officers in with (OIDC).

Where the Web UI signs officers in with OIDC it passes the officer's access token to the codec
server (``TEMPORAL_CODEC_PASS_ACCESS_TOKEN``). A token is accepted only when

* it is signed with an asymmetric algorithm by a key of the issuer's JWKS
  (``codec_oidc_jwks_url``, or the ``jwks_uri`` of the issuer's discovery document), fetched
  with ``jwt.PyJWKClient`` and cached ``codec_oidc_jwks_cache_seconds``: a token naming a key id
  not in the cached set fetches the set again (at most once per
  ``codec_oidc_jwks_refetch_seconds``, so made-up key ids cannot make the server hammer the
  identity provider), which picks up a rotated key; a key removed from the set stops being
  accepted when the cached set expires;
* its issuer, audience and expiry (30 s of leeway) are this server's, and it has a subject;
* it is an access token. The Web UI passes the access token, and an access token is what is
  meant for a resource server like this one; an ID token is meant for the client that asked
  for it, and a refresh token for the issuer. So: a header ``typ``, when present, must be
  ``JWT`` or ``at+jwt`` (RFC 9068; the header is optional in RFC 7519, and some providers omit
  it), and the providers' own markers of the other kinds are refused: a ``token_use`` other
  than ``access`` (Cognito), a ``typ`` claim other than ``Bearer`` (Keycloak's ``ID``,
  ``Refresh``, ``Logout``);
* it carries the role claim (``codec_oidc_role_claim``, default ``roles``: a list of strings,
  or one) and, when it names an email address, ``email_verified`` is true (the officer is then
  named by the email, else by the subject).

Which roles may decode and encode is :meth:`OidcVerifier.authorize`'s. A refusal is a
:class:`Refused`, 401 (the token does not authenticate) or 403 (it does, but the officer
may not), its message naming what is wrong and never quoting the token or its claims' values.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any

import jwt

from dsr.logging import get_logger
from dsr.settings import Settings, secure_url

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
ACCESS_TOKEN_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})
LEEWAY_SECONDS = 30
MAX_TOKEN_CHARS = 16 * 1024
FETCH_TIMEOUT_SECONDS = 10
DISCOVERY_PATH = "/.well-known/openid-configuration"
REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]
TYPE_REFUSED = ("the bearer token is not an access token (an ID, refresh or other token): "
                "the codec server takes the access token the Web UI passes")

log = get_logger()


class Refused(Exception):
    """A request refused (a bearer token here; the codec server's other refusals too): the
    HTTP status, what is wrong, and, for a token that verified, its subject (for the log)."""

    def __init__(self, status: int, message: str, subject: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.subject = subject


@dataclass(frozen=True)
class TokenIdentity:
    officer: str
    subject: str
    roles: frozenset[str]


class OidcVerifier:
    """Checks bearer tokens; blocking (it may fetch the key set): call it in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.issuer = settings.codec_oidc_issuer
        self.audience = settings.codec_oidc_audience
        self.jwks_url = settings.codec_oidc_jwks_url
        self.cache_seconds = settings.codec_oidc_jwks_cache_seconds
        self.refetch_seconds = settings.codec_oidc_jwks_refetch_seconds
        self.role_claim = settings.codec_oidc_role_claim
        self.roles = {
            "decode": frozenset(settings.codec_oidc_read_roles),
            "encode": frozenset(settings.codec_oidc_encode_roles),
        }
        self._jwks: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.issuer is not None

    def identity(self, token: str) -> TokenIdentity:
        """Who the token is for, or :class:`Refused`."""
        if not self.enabled:
            raise Refused(401, "bearer tokens are not accepted here (OIDC is not "
                               "configured): open a session with `python starter.py "
                               "ui-session`")
        header = _header(token)
        claims = self._claims(token, self._signing_key(header))
        _check_token_use(claims)
        return self._identity(claims)

    def authorize(self, identity: TokenIdentity, action: str) -> None:
        """Refuse (403) unless one of the token's roles may ``action`` (decode or encode)."""
        allowed = self.roles[action]
        if not identity.roles & allowed:
            raise Refused(
                403,
                f"the bearer token's roles ({self.role_claim}) do not allow to {action}: it "
                f"needs one of {', '.join(sorted(allowed)) or 'no role (nobody may)'}",
                identity.subject,
            )

    # The key ----------------------------------------------------------------------------

    def _signing_key(self, header: dict[str, Any]) -> jwt.PyJWK:
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Refused(401, "the bearer token names no signing key (no kid header)")
        try:
            return self._client().get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as error:
            log.warning("oidc key set could not be fetched", url=self.jwks_url,
                        error=str(error)[:300])
            raise Refused(503, "the identity provider's key set could not be fetched: "
                               "try again later") from None
        except (jwt.PyJWKClientError, jwt.PyJWKSetError):
            raise Refused(401, "the bearer token's signing key is not in the issuer's key "
                               "set (an unknown or retired key)") from None

    def _client(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._jwks is None:
                url = self.jwks_url or self._discover()
                self._jwks = jwt.PyJWKClient(
                    url, cache_keys=False, cache_jwk_set=True, lifespan=self.cache_seconds,
                    timeout=FETCH_TIMEOUT_SECONDS, cooldown_duration=self.refetch_seconds,
                )  # fmt: skip
                self.jwks_url = url
            return self._jwks

    def _discover(self) -> str:
        """The ``jwks_uri`` of the issuer's discovery document (OpenID Connect Discovery)."""
        assert self.issuer is not None
        url = self.issuer.rstrip("/") + DISCOVERY_PATH
        try:
            with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as response:
                document = json.load(response)
        except (OSError, ValueError) as error:
            log.warning("oidc discovery failed", url=url, error=type(error).__name__)
            raise Refused(503, "the identity provider's discovery document could not be "
                               "read: try again later") from None
        if not isinstance(document, dict):
            document = {}
        jwks_uri = document.get("jwks_uri")
        if document.get("issuer") != self.issuer or not isinstance(jwks_uri, str) or not (
            secure_url(jwks_uri)
        ):
            log.warning("oidc discovery document refused: another issuer, or no https jwks_uri",
                        url=url)
            raise Refused(503, "the identity provider's discovery document names another "
                               "issuer or no https key set: set DSR_CODEC_OIDC_JWKS_URL")
        return jwks_uri

    # The claims -------------------------------------------------------------------------

    def _claims(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=list(ALGORITHMS), audience=self.audience,
                issuer=self.issuer, leeway=LEEWAY_SECONDS, options={"require": REQUIRED_CLAIMS},
            )  # fmt: skip
        except jwt.InvalidTokenError as error:
            raise Refused(401, _invalid(error)) from None
        return claims

    def _identity(self, claims: dict[str, Any]) -> TokenIdentity:
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise Refused(401, "the bearer token's subject (sub) is empty")
        roles = _roles(claims, self.role_claim)
        if roles is None:
            raise Refused(403, f"the bearer token carries no {self.role_claim} claim, or "
                               "not as a list of roles or groups: the identity provider "
                               "must add it", subject)
        email = claims.get("email")
        if email is None:
            return TokenIdentity(subject, subject, roles)
        # Some providers send the flag as the string "true".
        if not isinstance(email, str) or claims.get("email_verified") not in (True, "true"):
            raise Refused(403, "the bearer token's email is not verified "
                               "(email_verified is not true)", subject)
        return TokenIdentity(email, subject, roles)


def _header(token: str) -> dict[str, Any]:
    if len(token) > MAX_TOKEN_CHARS:
        raise Refused(401, f"the bearer token is longer than {MAX_TOKEN_CHARS} characters")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise Refused(401, "the bearer token is not a JWT") from None
    token_type = header.get("typ")
    if token_type is not None and (
        not isinstance(token_type, str) or token_type.lower() not in ACCESS_TOKEN_TYPES
    ):
        raise Refused(401, TYPE_REFUSED + " (its typ header is not JWT or at+jwt)")
    if header.get("alg") not in ALGORITHMS:
        raise Refused(401, "the bearer token is not signed with an algorithm accepted "
                           f"here ({', '.join(ALGORITHMS)})")
    return header


def _check_token_use(claims: dict[str, Any]) -> None:
    if "token_use" in claims and claims["token_use"] != "access":
        raise Refused(401, TYPE_REFUSED + " (token_use)")
    marker = claims.get("typ")
    if marker is not None and (not isinstance(marker, str) or marker.lower() != "bearer"):
        raise Refused(401, TYPE_REFUSED + " (typ claim)")


def _invalid(error: jwt.InvalidTokenError) -> str:
    """What is wrong with a token, never quoting it."""
    if isinstance(error, jwt.ExpiredSignatureError):
        return "the bearer token has expired"
    if isinstance(error, jwt.ImmatureSignatureError):
        return "the bearer token is not valid yet (nbf or iat in the future)"
    if isinstance(error, jwt.InvalidAudienceError):
        return "the bearer token is not for this server (its audience, aud)"
    if isinstance(error, jwt.InvalidIssuerError):
        return "the bearer token is from another issuer (iss)"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"the bearer token lacks the {error.claim} claim"
    if isinstance(error, jwt.InvalidSignatureError):
        return "the bearer token's signature does not verify with the issuer's key"
    if isinstance(error, jwt.InvalidAlgorithmError):
        return "the bearer token's algorithm does not match its signing key"
    return f"the bearer token is not valid ({type(error).__name__})"


def _roles(claims: dict[str, Any], claim: str) -> frozenset[str] | None:
    """The roles in ``claim``: a top-level claim of that name (URL-like names have dots), else
    the dotted path into nested objects; None when absent or not a string or list of them."""
    value: Any = claims.get(claim)
    if value is None and "." in claim:
        value = claims
        for part in claim.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    return None
