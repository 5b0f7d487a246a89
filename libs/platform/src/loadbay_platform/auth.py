"""Bearer JWT authentication for the HTTP APIs.

Tokens carry `sub` (the user id) and `email`. Dev mode signs them with a shared secret
(`loadbay token`); production verifies an OIDC issuer's keys (`LOADBAY_AUTH__JWKS_URL`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from loadbay_platform.settings import AuthSettings


@dataclass(frozen=True)
class Principal:
    user_id: str
    email: str


def mint_token(
    settings: AuthSettings, user_id: str, email: str, *, ttl_s: int = 30 * 24 * 3600
) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "email": email, "iat": now, "exp": now + ttl_s}
    if settings.issuer:
        claims["iss"] = settings.issuer
    if settings.audience:
        claims["aud"] = settings.audience
    return jwt.encode(claims, settings.secret.get_secret_value(), algorithm=settings.algorithm)


class TokenVerifier:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwks_url) if settings.jwks_url else None

    def verify(self, token: str) -> Principal:
        if self._jwks is not None:
            key = self._jwks.get_signing_key_from_jwt(token).key
            algorithms = ["RS256", "ES256"]
        else:
            key = self.settings.secret.get_secret_value()
            algorithms = [self.settings.algorithm]
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=self.settings.audience,
            issuer=self.settings.issuer,
            options={"require": ["sub", "exp"]},
        )
        sub, email = claims["sub"], claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise jwt.InvalidTokenError("the token has no email claim")
        for name, value in (("sub", sub), ("email", email)):
            if not _plain_text(value):
                raise jwt.InvalidTokenError(
                    f"the token's {name} claim must be a string of at most {MAX_CLAIM_CHARS}"
                    " printable characters"
                )
        return Principal(user_id=str(sub), email=email)


# Ids and addresses are stored, logged and put in object keys and emails: no control
# characters (a NUL cannot be stored), no lone surrogates (not encodable), bounded length.
MAX_CLAIM_CHARS = 320


def _plain_text(value: object) -> bool:
    # isprintable() is False for control, format and surrogate code points.
    return isinstance(value, str) and 0 < len(value) <= MAX_CLAIM_CHARS and value.isprintable()


_bearer = HTTPBearer(auto_error=False)


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise HTTPException(
            401,
            "missing bearer token: send 'Authorization: Bearer <jwt>'"
            " (mint one with 'loadbay token')",
            headers={"WWW-Authenticate": "Bearer"},
        )
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        return verifier.verify(credentials.credentials)
    except jwt.PyJWTError as exc:
        raise HTTPException(
            401, f"invalid token: {exc}", headers={"WWW-Authenticate": "Bearer"}
        ) from exc


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def principal_of(request: Request) -> Principal:
    """The request's principal, for routes whose authentication is optional by settings."""
    return current_principal(request, await _bearer(request))
