"""Signing in and out: the dev user in dev mode, OIDC (code flow with PKCE) otherwise."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from loadbay_console import oidc
from loadbay_console.web import Form, backend_of, redirect, render, safe_next, session_of

router = APIRouter()


@router.get("/signin")
async def signin(request: Request, next: str = "/") -> Response:
    state = request.app.state
    target = safe_next(next)
    if state.dev_mode:
        backend_of(request)  # signs in as the dev user
        return redirect(target)
    settings = state.settings
    if not settings.oidc_issuer or not settings.oidc_client_id:
        return render(
            request,
            "signin.html",
            status_code=503,
            problem="Sign-in is not configured: set LOADBAY_CONSOLE_OIDC_ISSUER and"
            " LOADBAY_CONSOLE_OIDC_CLIENT_ID (or LOADBAY_DEV_MODE=true on a laptop).",
        )
    try:
        config = await oidc.discover(state.http, settings.oidc_issuer)
    except oidc.SignInFailed as exc:
        return render(request, "signin.html", status_code=502, problem=str(exc))
    verifier, challenge = oidc.pkce_pair()
    login = {
        "state": secrets.token_urlsafe(24),
        "nonce": secrets.token_urlsafe(24),
        "verifier": verifier,
        "next": target,
    }
    session_of(request).login = login
    url = oidc.authorization_url(config, settings, login["state"], challenge, login["nonce"])
    return RedirectResponse(url, status_code=303)


@router.get("/auth/callback", response_model=None)
async def callback(
    request: Request, code: str = "", state: str = "", error: str = ""
) -> HTMLResponse | RedirectResponse:
    session = session_of(request)
    login, session.login = session.login, None  # one use only
    if error:
        return render(request, "signin.html", status_code=400, problem=f"The issuer said: {error}")
    if login is None or not state or not secrets.compare_digest(state, str(login["state"])):
        return render(
            request,
            "signin.html",
            status_code=400,
            problem="This sign-in was not started here, or has been used already: start again.",
        )
    settings = request.app.state.settings
    try:
        config = await oidc.discover(request.app.state.http, settings.oidc_issuer or "")
        tokens = await oidc.exchange(
            request.app.state.http, config, settings, code, str(login["verifier"])
        )
        id_claims = oidc.claims(str(tokens.get("id_token", "")))
        if id_claims.get("nonce") != login["nonce"]:
            raise oidc.SignInFailed("the issuer's ID token does not carry this sign-in's nonce")
        api_token = tokens.get(settings.oidc_api_token)
        if not isinstance(api_token, str):
            raise oidc.SignInFailed(f"the issuer sent no {settings.oidc_api_token}")
        user = oidc.claims(api_token)
    except oidc.SignInFailed as exc:
        return render(request, "signin.html", status_code=502, problem=str(exc))
    fresh = request.app.state.sessions.renew(session)  # a new session id at sign-in
    fresh.sign_in(api_token, str(user.get("sub", "")), str(user.get("email", "")))
    request.state.session = fresh
    return redirect(safe_next(str(login["next"])))


@router.post("/signout")
async def signout(request: Request, form: Form) -> Response:
    session = session_of(request)
    session.sign_out()
    request.app.state.sessions.drop(session)
    request.state.session = request.app.state.sessions.renew(session)
    return render(request, "signin.html", signed_out=True)
