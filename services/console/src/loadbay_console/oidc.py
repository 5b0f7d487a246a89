"""OIDC authorization code flow with PKCE (RFC 7636, S256): the pieces the sign-in routes use.

The console never checks a token's signature itself: the APIs do, against the issuer's keys,
on every call. It reads the token's claims only to show who is signed in.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from loadbay_console.settings import ConsoleSettings


class SignInFailed(Exception):
    """The issuer refused, or answered something unusable; the message says which."""


def pkce_pair() -> tuple[str, str]:
    """A code verifier (43+ characters) and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def discover(http: httpx.AsyncClient, issuer: str) -> dict[str, Any]:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = await http.get(url, timeout=10)
        response.raise_for_status()
        config = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SignInFailed(f"cannot read the issuer's configuration at {url}: {exc}") from exc
    for key in ("authorization_endpoint", "token_endpoint"):
        if not isinstance(config.get(key), str):
            raise SignInFailed(f"the issuer's configuration has no {key}")
    return dict(config)


def redirect_uri(settings: ConsoleSettings) -> str:
    return settings.public_url.rstrip("/") + "/auth/callback"


def authorization_url(
    config: dict[str, Any], settings: ConsoleSettings, state: str, challenge: str, nonce: str
) -> str:
    query = {
        "response_type": "code",
        "client_id": settings.oidc_client_id or "",
        "redirect_uri": redirect_uri(settings),
        "scope": settings.oidc_scopes,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    endpoint = str(config["authorization_endpoint"])
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)


async def exchange(
    http: httpx.AsyncClient,
    config: dict[str, Any],
    settings: ConsoleSettings,
    code: str,
    verifier: str,
) -> dict[str, Any]:
    """The issuer's tokens for `code`, proving with `verifier` that this console asked for it."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri(settings),
        "client_id": settings.oidc_client_id or "",
        "code_verifier": verifier,
    }
    if settings.oidc_client_secret is not None:
        form["client_secret"] = settings.oidc_client_secret.get_secret_value()
    try:
        response = await http.post(str(config["token_endpoint"]), data=form, timeout=10)
    except httpx.HTTPError as exc:
        raise SignInFailed(f"the issuer's token endpoint did not answer: {exc}") from exc
    if response.status_code != 200:
        raise SignInFailed(f"the issuer refused the sign-in: {response.text[:500]}")
    try:
        tokens = response.json()
    except ValueError as exc:
        raise SignInFailed("the issuer's token answer is not JSON") from exc
    if not isinstance(tokens, dict):
        raise SignInFailed("the issuer's token answer is not a JSON object")
    return tokens


def claims(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified (the APIs verify it on every call)."""
    try:
        return dict(jwt.decode(token, options={"verify_signature": False}))
    except jwt.PyJWTError as exc:
        raise SignInFailed(f"the issuer's token is not a JWT: {exc}") from exc
