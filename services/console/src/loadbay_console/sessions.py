"""Server-side sessions: the browser holds only a signed, random session id (HttpOnly,
SameSite=Lax); the user's token, the CSRF token and one-time messages stay on the server.

The store is this process's memory: a console restart signs everyone out (in dev mode they are
signed in again at once). It is bounded: the oldest sessions go first when it is full.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, Signer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "loadbay_console"
MAX_SESSIONS = 10_000


@dataclass
class Session:
    id: str
    expires_at: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    token: str | None = None
    user_id: str | None = None
    email: str | None = None
    # One-time messages for the next page: (kind, text), kind "ok" or "error".
    flashes: list[tuple[str, str]] = field(default_factory=list)
    # An OIDC sign-in under way: state, code verifier, nonce and where to go afterwards.
    login: dict[str, Any] | None = None
    # What one page hands the next (a connection test's result), taken once.
    notes: dict[str, Any] = field(default_factory=dict)

    def flash(self, kind: str, text: str) -> None:
        self.flashes.append((kind, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken

    def sign_in(self, token: str, user_id: str, email: str) -> None:
        self.token, self.user_id, self.email = token, user_id, email
        self.csrf = secrets.token_urlsafe(32)  # a new one at every sign-in

    def sign_out(self) -> None:
        self.token = self.user_id = self.email = None
        self.login = None


class SessionStore:
    def __init__(self, secret: str, ttl_s: int, *, secure: bool) -> None:
        self._signer = Signer(secret, salt="loadbay-console-session")
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self.ttl_s = ttl_s
        self.secure = secure

    def of(self, request: Request) -> tuple[Session, bool]:
        """The request's session, or a new one (True: its cookie must be set)."""
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                session_id = self._signer.unsign(raw).decode()
            except BadSignature:
                session_id = None
            found = self._sessions.get(session_id) if session_id else None
            if found is not None and found.expires_at > time.time():
                return found, False
            if found is not None:
                del self._sessions[found.id]
        return self._new(), True

    def _new(self) -> Session:
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.popitem(last=False)
        session = Session(id=secrets.token_urlsafe(32), expires_at=time.time() + self.ttl_s)
        self._sessions[session.id] = session
        return session

    def renew(self, session: Session) -> Session:
        """A new id for the same user (at sign-in: a session id seen before it is worthless)."""
        self._sessions.pop(session.id, None)
        fresh = self._new()
        fresh.flashes, fresh.login = session.flashes, session.login
        return fresh

    def drop(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            self._signer.sign(session.id).decode(),
            max_age=self.ttl_s,
            httponly=True,
            samesite="lax",
            secure=self.secure,
            path="/",
        )
