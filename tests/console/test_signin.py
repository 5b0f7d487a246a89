"""Signing in outside dev mode: OIDC authorization code with PKCE against a small issuer
written here, which mints the tokens the APIs trust. The console shows what the APIs show the
signed-in user, refuses a callback it did not start, and every form needs the session's CSRF
token. No browser: httpx follows the redirects as a browser would."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import SecretStr

from loadbay_console.app import create_app
from loadbay_console.settings import ConsoleSettings
from loadbay_platform.auth import mint_token
from loadbay_platform.settings import PlatformSettings
from tests.conftest import Platform, User, make_user
from tests.console.conftest import bind, serve


@dataclass
class Issuer:
    url: str
    user: User
    ttl_s: int = 600  # of the access tokens it mints
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)


def issuer_app(issuer: Issuer, platform: Platform) -> FastAPI:
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    async def configuration() -> dict[str, str]:
        return {
            "issuer": issuer.url,
            "authorization_endpoint": issuer.url + "/authorize",
            "token_endpoint": issuer.url + "/token",
        }

    @app.get("/authorize")
    async def authorize(request: Request) -> RedirectResponse:
        asked = dict(request.query_params)
        issuer.seen.append(asked)
        assert asked["response_type"] == "code" and asked["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        issuer.codes[code] = asked
        return RedirectResponse(
            f"{asked['redirect_uri']}?code={code}&state={asked['state']}", status_code=303
        )

    @app.post("/token")
    async def token(
        grant_type: str = Form(), code: str = Form(), redirect_uri: str = Form(),
        client_id: str = Form(), code_verifier: str = Form(),
    ) -> JSONResponse:  # fmt: skip
        asked = issuer.codes.pop(code, None)  # a code is good once
        digest = hashlib.sha256(code_verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if (
            asked is None
            or grant_type != "authorization_code"
            or redirect_uri != asked["redirect_uri"]
            or client_id != asked["client_id"]
            or challenge != asked["code_challenge"]
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        user = issuer.user
        id_token = jwt.encode(
            {"sub": user.user_id, "email": user.email, "nonce": asked["nonce"], "aud": client_id},
            "issuer-signing-key-for-id-tokens-only",
            algorithm="HS256",
        )
        # The access token is one the APIs trust (the session's platform secret).
        access = mint_token(platform.settings.auth, user.user_id, user.email, ttl_s=issuer.ttl_s)
        return JSONResponse({"access_token": access, "id_token": id_token, "token_type": "Bearer"})

    return app


@pytest.fixture
async def oidc_console(platform: Platform) -> AsyncIterator[tuple[str, Issuer]]:
    user = make_user(platform.settings, "oidc")
    issuer_sock, console_sock = bind(), bind()
    issuer = Issuer(f"http://127.0.0.1:{issuer_sock.getsockname()[1]}", user)
    console_url = f"http://127.0.0.1:{console_sock.getsockname()[1]}"
    settings = ConsoleSettings(
        reload_url=platform.urls["reload"],
        loader_url=platform.urls["loader"],
        distribution_url=platform.urls["distribution"],
        session_secret=SecretStr(secrets.token_urlsafe(32)),
        oidc_issuer=issuer.url,
        oidc_client_id="loadbay-console",
        public_url=console_url,
    )
    console = create_app(settings, PlatformSettings(auth=platform.settings.auth, dev_mode=False))
    servers = [await serve(issuer_app(issuer, platform), issuer_sock)]
    servers.append(await serve(console, console_sock))
    try:
        yield console_url, issuer
    finally:
        for server, task, _ in servers:
            server.should_exit = True
            await task


async def test_signing_in_with_pkce_shows_only_what_the_api_shows_that_user(
    oidc_console: tuple[str, Issuer], platform: Platform, alice: User
) -> None:
    console_url, issuer = oidc_console
    mine, theirs = f"d_{uuid.uuid4().hex[:8]}", f"d_{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=platform.urls["reload"]) as api:
        for owner, domain in ((issuer.user, mine), (alice, theirs)):
            made = await api.post(
                "/datasets",
                json={
                    "domain": domain,
                    "name": "orders",
                    "columns": [{"name": "a", "type": "text"}],
                },
                headers=owner.headers,
            )
            assert made.status_code == 201, made.text

    async with httpx.AsyncClient(base_url=console_url, follow_redirects=True) as browser:
        page = await browser.get("/datasets")
        assert page.status_code == 200, page.text
        # Sent to the issuer with an S256 challenge, a state and a nonce, and back.
        (asked,) = issuer.seen
        assert asked["redirect_uri"] == console_url + "/auth/callback"
        assert len(asked["code_challenge"]) == 43 and asked["state"] and asked["nonce"]
        assert [str(r.url.path) for r in page.history] == ["/datasets", "/signin", "/authorize",
                                                           "/auth/callback"]  # fmt: skip
        assert str(page.url) == console_url + "/datasets"
        assert mine in page.text and theirs not in page.text
        assert issuer.user.user_id in page.text
        cookie = page.history[-1].headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie

        # A form without the session's CSRF token is refused, and changes nothing.
        forged = await browser.post("/datasets/new", data={"domain": "x_forged", "name": "abc"})
        assert forged.status_code == 403 and "out of date" in forged.text
        odd = await browser.post("/datasets/new", data={"csrf": "\u00e9t\u00e9", "domain": "x"})
        assert odd.status_code == 403

        # Signing out forgets the token: the next page asks the issuer again.
        csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        out = await browser.post("/signout", data={"csrf": csrf})
        assert out.status_code == 200 and "Signed out" in out.text
        again = await browser.get("/datasets", follow_redirects=False)
        assert again.status_code == 303 and again.headers["location"].startswith("/signin")


async def test_a_callback_the_console_did_not_start_is_refused(
    oidc_console: tuple[str, Issuer],
) -> None:
    console_url, _ = oidc_console
    async with httpx.AsyncClient(base_url=console_url) as browser:
        start = await browser.get("/signin", params={"next": "https://evil.example/"})
        assert start.status_code == 303
        query = parse_qs(urlsplit(start.headers["location"]).query)
        # A state from elsewhere (a forged link): refused, and no token is asked for.
        forged = await browser.get("/auth/callback", params={"code": "x", "state": "forged"})
        assert forged.status_code == 400 and "not started here" in forged.text
        # The real one, once it was used up by the refusal, is refused too: start again.
        redirected = await browser.get(start.headers["location"])
        assert redirected.status_code == 303
        back = urlsplit(redirected.headers["location"])
        assert parse_qs(back.query)["state"] == query["state"]
        late = await browser.get("/auth/callback?" + back.query)
        assert late.status_code == 400
        # Signing in again works, and never sends the browser off the console afterwards.
        start = await browser.get("/signin", params={"next": "https://evil.example/"})
        at_issuer = await browser.get(start.headers["location"])
        done = await browser.get(at_issuer.headers["location"])
        assert done.status_code == 303 and done.headers["location"] == "/"


async def test_an_expired_token_sends_the_user_to_sign_in_again(
    oidc_console: tuple[str, Issuer],
) -> None:
    console_url, issuer = oidc_console
    issuer.ttl_s = 1
    async with httpx.AsyncClient(base_url=console_url, follow_redirects=True) as browser:
        assert (await browser.get("/datasets")).status_code == 200
        await asyncio.sleep(2.5)  # the API refuses the token now (401)
        expired = await browser.get("/datasets?status=x", follow_redirects=False)
        assert expired.status_code == 303
        assert expired.headers["location"] == "/signin?next=/datasets%3Fstatus%3Dx"


def test_outside_dev_mode_the_built_in_session_secret_is_refused(platform: Platform) -> None:
    from loadbay_platform.secrets import InsecureConfiguration

    with pytest.raises(InsecureConfiguration, match="LOADBAY_CONSOLE_SESSION_SECRET"):
        create_app(ConsoleSettings(), PlatformSettings(dev_mode=False))
