"""The first thing every request meets: size limits, NUL characters and JSON nesting depth,
checked before any route sees the request, so hostile input gets a clear 4xx instead of a 500,
a deep recursion or an unbounded read.

A pure ASGI middleware (no buffering framework in between):
- A declared `Content-Length` over the limit is answered 413 at once, without reading.
- A body without one (chunked) is counted while it streams and cut off with 413.
- `multipart/form-data` sent to a route that takes files or form fields (file uploads, which
  the form parser spools to disk and the reload service streams on to object storage) has its
  own, larger limit; sent anywhere else it is just a body (a route may read it into memory).
- Every other body except `application/octet-stream` is read whole (it is at most
  `max_body_bytes`, and the route would buffer it anyway) and checked as JSON text: nesting
  deeper than `max_json_depth`, a `\\u0000` escape or an unpaired UTF-16 surrogate escape is a
  400. URL-encoded forms are checked for `%00` instead, as are the path and the query string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loadbay_platform.settings import HttpSettings

BODY_SETTING = "LOADBAY_HTTP__MAX_BODY_BYTES"
UPLOAD_SETTING = "LOADBAY_HTTP__MAX_UPLOAD_BYTES"
DEPTH_SETTING = "LOADBAY_HTTP__MAX_JSON_DEPTH"

# A JSON string, or an unterminated one running to the end: every quote starts a match, so
# the scan stays linear whatever the body.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_BRACKET_TYPES = bytes.maketrans(b"{}", b"[]")  # which kind does not matter for depth
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# A \u escape of NUL, a surrogate pair, or a lone surrogate of either half (a literal first,
# so the scan is a fast search; whether it is an escape or text is checked per match).
_ESCAPE = re.compile(
    rb"\\u(0000|[dD][89abAB][0-9a-fA-F]{2}(?:\\u[dD][c-fC-F][0-9a-fA-F]{2})?"
    rb"|[dD][c-fC-F][0-9a-fA-F]{2})"
)


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes its limit; answered 413."""

    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(413, too_large_message(limit, setting))


class ClientGone(Exception):
    """The client disconnected before sending its whole body."""


def too_large_message(limit: int, setting: str) -> str:
    return f"the request body is larger than the limit of {_size(limit)} ({limit} bytes; {setting})"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


class RequestGuard:
    def __init__(
        self, app: ASGIApp, settings: HttpSettings, takes_uploads: Callable[[Scope], bool]
    ) -> None:
        self.app = app
        self.settings = settings
        self.takes_uploads = takes_uploads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        shape = error_shape(scope)
        if problem := url_problem(scope):
            await reject(send, 400, problem, shape)
            return
        headers = dict(scope["headers"])
        kind = body_kind(headers.get(b"content-type", b"").decode("latin-1"))
        limit, setting = (
            (self.settings.max_upload_bytes, UPLOAD_SETTING)
            if kind == "multipart" and self.takes_uploads(scope)
            else (self.settings.max_body_bytes, BODY_SETTING)
        )
        declared = _content_length(headers.get(b"content-length"))
        if declared is not None and declared > limit:
            await reject(send, 413, too_large_message(limit, setting), shape)
            return
        if kind in ("json", "form"):
            try:
                body = await read_body(receive, limit, setting)
            except BodyTooLarge as exc:
                await reject(send, 413, exc.detail, shape)
                return
            except ClientGone:
                return
            problem = form_problem(body) if kind == "form" else json_problem(body, self.settings)
            if problem:
                await reject(send, 400, problem, shape)
                return
            receive = _replay(body, receive)
        else:
            receive = _counting(receive, limit, setting)
        await self._call_app(scope, receive, send, shape)

    async def _call_app(
        self, scope: Scope, receive: Receive, send: Send, shape: ErrorBody | None
    ) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except BodyTooLarge as exc:
            # Normally the app's exception handlers answer it; this is for routes that do not.
            if started:
                raise
            await reject(send, 413, exc.detail, shape)


FORM_MEDIA = ("multipart/", "application/x-www-form-urlencoded")


def form_routes(app: FastAPI) -> Callable[[Scope], bool]:
    """Whether a request goes to a route of `app` whose body is a form (files, fields).

    Read from the app's OpenAPI document (a request body of multipart/form-data or a URL-encoded
    form), once, at the first request: it lists every route, those of included routers too,
    whatever FastAPI keeps internally."""
    forms: list[tuple[str, re.Pattern[str]]] | None = None

    def takes_uploads(scope: Scope) -> bool:
        nonlocal forms
        if forms is None:
            forms = _form_operations(app.openapi())
        method, path = scope.get("method", ""), scope.get("path", "")
        return any(method == m and pattern.fullmatch(path) for m, pattern in forms)

    return takes_uploads


def _form_operations(document: dict[str, Any]) -> list[tuple[str, re.Pattern[str]]]:
    found = []
    for template, operations in document.get("paths", {}).items():
        pattern = re.compile(
            "".join(
                "[^/]+" if part.startswith("{") else re.escape(part)
                for part in re.split(r"(\{[^}/]+\})", template)
            )
        )
        for method, operation in operations.items():
            content = (
                operation.get("requestBody", {}).get("content", {})
                if isinstance(operation, dict)
                else {}
            )
            if any(c.startswith(FORM_MEDIA) for c in content):
                found.append((method.upper(), pattern))
    return found


def body_kind(content_type: str) -> str:
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith("multipart/"):
        return "multipart"
    if media == "application/x-www-form-urlencoded":
        return "form"
    if media == "application/octet-stream":
        return "binary"
    return "json"  # JSON, or parsed as JSON by a route (the loader takes any other type)


def _content_length(value: bytes | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # the server itself refuses a malformed Content-Length


async def read_body(receive: Receive, limit: int, setting: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit, setting)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # waits for the disconnect, as the server's would
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _counting(receive: Receive, limit: int, setting: str) -> Receive:
    size = 0

    async def counting() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise BodyTooLarge(limit, setting)
        return message

    return counting


def url_problem(scope: Scope) -> str | None:
    if "\x00" in scope.get("path", ""):
        return "the URL path contains a NUL character (%00), which loadbay does not accept"
    if b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
        return "the query string contains a NUL character (%00), which loadbay does not accept"
    return None


def form_problem(body: bytes) -> str | None:
    if b"\x00" in unquote_to_bytes(body):
        return "the form contains a NUL character (%00), which loadbay does not accept"
    return None


def json_problem(body: bytes, settings: HttpSettings) -> str | None:
    if json_too_deep(body, settings.max_json_depth):
        return (
            f"the JSON body is nested deeper than {settings.max_json_depth} levels"
            f" ({DEPTH_SETTING})"
        )
    for match in _ESCAPE.finditer(body):
        if not _is_escape(body, match.start()):
            continue  # an escaped backslash followed by the text "u0000"
        escape = match.group(1)
        if escape == b"0000":
            return "the JSON body contains a NUL character (\\u0000), which loadbay does not accept"
        if len(escape) == 4:
            return (
                f"the JSON body contains an unpaired UTF-16 surrogate"
                f" (\\u{escape.decode()}), which is not a character"
            )
    return None


def _is_escape(body: bytes, backslash: int) -> bool:
    """Whether the backslash at `backslash` starts an escape: an even number precede it."""
    start = backslash
    while start > 0 and body[start - 1] == 0x5C:
        start -= 1
    return (backslash - start) % 2 == 0


def json_too_deep(body: bytes, limit: int) -> bool:
    """Whether arrays/objects nest deeper than `limit`, brackets inside strings not counted.

    Linear in the body, in C: strings are cut out, only brackets kept, then innermost pairs
    removed pass by pass. After `limit` passes a valid document of depth <= `limit` is empty;
    a pair left means deeper nesting, and more than `limit` unclosed openers means a parser
    would recurse that deep before finding the document truncated.
    """
    brackets = _STRING.sub(b"", body).translate(_BRACKET_TYPES, _NOT_BRACKETS)
    if brackets.count(b"[") <= limit:
        return False  # the common case: too few openers to nest that deep
    for _ in range(limit):
        fewer = brackets.replace(b"[]", b"")
        if fewer == brackets:
            break
        brackets = fewer
    return b"[]" in brackets or brackets.count(b"[") > limit


ErrorBody = Callable[[int, str], dict[str, Any]]


def error_shape(scope: Scope) -> ErrorBody | None:
    """The app's own error body (`app.state.error_body`), e.g. Neptune's `{code, requestId,
    detailedMessage}` on the bulk loader; None for the platform's `{"detail": ...}`."""
    app = scope.get("app")
    shape: ErrorBody | None = getattr(getattr(app, "state", None), "error_body", None)
    return shape


async def reject(send: Send, status: int, detail: str, shape: ErrorBody | None = None) -> None:
    body = json.dumps(shape(status, detail) if shape else {"detail": detail}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            # The body may be unread: the connection cannot carry another request.
            (b"connection", b"close"),
        ],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})
