"""What every page shares: the templates, the session, the signed-in user's view of the APIs,
CSRF checks on every form, and rendering an API's refusal as a page."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from loadbay_console.backend import Backend, BackendError
from loadbay_console.sessions import Session
from loadbay_platform.auth import mint_token

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")  # autoescapes .html


class SignInRequired(Exception):
    """The visitor has no (valid) token: send them to /signin, then back to `next`."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRefused(Exception):
    """A form or XHR without this session's CSRF token (a forged cross-site request)."""


def session_of(request: Request) -> Session:
    session: Session = request.state.session
    return session


CurrentSession = Annotated[Session, Depends(session_of)]


def backend_of(request: Request) -> Backend:
    """The APIs as the signed-in user sees them; in dev mode, sign in as the dev user first."""
    session = session_of(request)
    state = request.app.state
    if session.token is None and state.dev_mode:
        user_id, email = state.settings.dev_user_id, state.settings.dev_user_email
        session.sign_in(mint_token(state.auth, user_id, email, ttl_s=24 * 3600), user_id, email)
    if session.token is None:
        raise SignInRequired(here(request))
    return Backend(state.http, state.urls, session.token)


Api = Annotated[Backend, Depends(backend_of)]


def _check_csrf(request: Request, sent: object) -> None:
    expected = session_of(request).csrf.encode()
    if not isinstance(sent, str) or not secrets.compare_digest(sent.encode(), expected):
        raise CsrfRefused()


async def checked_form(request: Request) -> FormData:
    """The request's form, once its CSRF token (form field `csrf` or header X-CSRF-Token)
    matches the session's."""
    form = await request.form()
    _check_csrf(request, request.headers.get("x-csrf-token") or form.get("csrf"))
    return form


def checked_header(request: Request) -> None:
    """The request's X-CSRF-Token header matches the session's (a script's request whose body
    is not read here)."""
    _check_csrf(request, request.headers.get("x-csrf-token"))


Form = Annotated[FormData, Depends(checked_form)]


def here(request: Request) -> str:
    """The path (and query) of this request, to come back to after signing in."""
    query = f"?{request.url.query}" if request.url.query else ""
    return request.url.path + query


def safe_next(target: str | None) -> str:
    """Only a path on this console: never `//host` or `https://elsewhere` (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    session = session_of(request)
    return templates.TemplateResponse(
        request,
        template,
        {
            "session": session,
            "csrf": session.csrf,
            "flashes": session.take_flashes(),
            "dev_mode": request.app.state.dev_mode,
            **context,
        },
        status_code=status_code,
    )


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def back_with(request: Request, path: str, kind: str, text: str) -> RedirectResponse:
    """Post/redirect/get: the next page shows `text` once."""
    session_of(request).flash(kind, text)
    return redirect(path)


def refusal_page(request: Request, error: BackendError) -> HTMLResponse:
    if error.status == 401:
        session_of(request).sign_out()
    status = error.status if 400 <= error.status < 600 else 502
    return render(request, "error.html", status_code=status, error=error)


def form_list(form: FormData, name: str) -> list[str]:
    return [v for v in form.getlist(name) if isinstance(v, str)]


def form_text(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


# Jinja filters: times and sizes as people read them.
def when(value: object) -> str:
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def size(value: object) -> str:
    try:
        amount = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TB"


def duration(value: object) -> str:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"


templates.env.filters.update(when=when, size=size, duration=duration)
