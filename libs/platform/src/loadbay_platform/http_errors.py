"""Exception handlers every HTTP API shares: a service's `ApiError` gets its status and
`{"error", "message"}`; input a route could not store or process gets a clear 4xx with
`{"detail": ...}`, and a 422 never echoes a secret that was submitted.

The request guard (request_guard.py) refuses NUL and deep JSON in what it can see; these
handlers catch what gets past it (a NUL in a form field of an upload, a lone surrogate in a
file name...) where it fails: at PostgreSQL, at an encoder, or in a recursive walk.
"""

from __future__ import annotations

from typing import Any

from asyncpg.exceptions import (
    CharacterNotInRepertoireError,
    DataError,
    UntranslatableCharacterError,
)
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from loadbay_platform.errors import ApiError
from loadbay_platform.outages import INFRASTRUCTURE_ERRORS

UNSTORABLE = (
    "the request contains a character that cannot be stored (a NUL character, or text that is"
    " not valid Unicode)"
)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for exc in (CharacterNotInRepertoireError, UntranslatableCharacterError):
        app.add_exception_handler(exc, _unstorable)
    app.add_exception_handler(UnicodeEncodeError, _unencodable)
    app.add_exception_handler(DataError, _bad_query_argument)
    app.add_exception_handler(RecursionError, _too_deep)
    # A dependency down (PostgreSQL restarting, say) is a 503 to retry, not a 500.
    for outage in INFRASTRUCTURE_ERRORS:
        if issubclass(outage, Exception):
            app.add_exception_handler(outage, _unavailable)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        {"error": type(exc).__name__, "message": str(exc)}, status_code=exc.status_code
    )


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": "a service this API depends on is unavailable for a moment; retry shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 shape (`{"detail": [{type, loc, msg, input, ctx}]}`), with `input` kept
    only where it cannot carry a secret (see `redacted`)."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": jsonable_encoder(redacted(exc.errors()))}, status_code=422)


# A field whose name contains one of these holds a secret (secret_access_key, password,
# access_key_id, token...): its submitted value is never echoed.
SECRET_NAMES = ("secret", "password", "token", "key", "credential")
MAX_ECHO_CHARS = 200


def redacted(errors: Any) -> list[dict[str, Any]]:
    """The errors without the `input` of secret-like fields, of objects and lists (a missing
    field's or a model validator's error carries the whole submitted object), and of long
    text. A plain wrong value (`"type": "money"`) is still shown, which is what helps."""
    return [
        error if "input" not in error or _may_echo(error) else {
            k: v for k, v in error.items() if k != "input"
        }
        for error in errors
    ]  # fmt: skip


def _may_echo(error: dict[str, Any]) -> bool:
    if error.get("type") == "extra_forbidden":
        return False  # an unexpected field may be anything, a misplaced secret included
    value = error["input"]
    if not (value is None or isinstance(value, bool | int | float | str)):
        return False
    if isinstance(value, str) and len(value) > MAX_ECHO_CHARS:
        return False
    names = [part.lower() for part in error.get("loc", ()) if isinstance(part, str)]
    return not any(word in name for name in names for word in SECRET_NAMES)


async def _unstorable(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": UNSTORABLE}, status_code=400)


async def _unencodable(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {
            "detail": "the request contains text that cannot be encoded as UTF-8 (an unpaired"
            " UTF-16 surrogate such as \\ud800 is not a character)"
        },
        status_code=400,
    )


async def _bad_query_argument(request: Request, exc: Exception) -> JSONResponse:
    """asyncpg wraps an argument it cannot encode; only the encoding case is the caller's."""
    if isinstance(exc.__cause__, UnicodeEncodeError):
        return await _unencodable(request, exc.__cause__)
    raise exc  # a wrong argument from the service's own code: a 500, as it should be


async def _too_deep(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "the request is nested too deeply"}, status_code=400)
