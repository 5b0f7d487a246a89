"""Neptune's fast reset: ``POST /system`` empties the graph in two steps.

1. ``{"action": "initiateDatabaseReset"}`` answers ``{"status": "200 OK", "payload":
   {"token": "<uuid>"}}``. The token is valid for 60 minutes; only the latest one is.
2. ``{"action": "performDatabaseReset", "token": "<uuid>"}`` empties the graph and answers
   ``{"status": "200 OK"}``. A token that is not the latest, or has expired, is Neptune's 400
   ``InvalidParameterException`` "System command parameter 'token' : '<token>' does not match
   database reset token".

Both take a JSON body or URL-encoded parameters, as Neptune does, with its errors for a missing
action ("Missing required parameters: [action]"), an unknown one ("System command parameter
'action' has unsupported value 'XXX'") and an action given twice ("Too many values supplied
for: action" / "Duplicate field 'action'").

Where loadbay chooses (Neptune is silent or differs; docs/bulk-loader.md says the same):
- Only the graph's users (LOADBAY_LOADER_GRAPH_USERS) may do either step, as only IAM
  principals granted ``neptune-db:ResetDatabase`` may on Neptune; anyone else gets 403
  ``AccessDeniedException``. Any graph user may present a token another one was issued.
- While a load is running (LOAD_IN_PROGRESS) the reset is refused with 400
  ``PreconditionsFailedException`` naming the load, and the token stays valid: cancel the load
  or wait for it. Queued loads stay queued and run on the empty graph afterwards. (Neptune
  restarts the cluster, cancelling whatever runs.)
- The reset is one transaction: readers see the whole graph or none of it, never a part. It
  empties the property graph, the RDF quads and what each source has loaded (so RESUME and
  AUTO load every file again); the loads' history and error logs stay readable.
- The token is kept in the database, so it survives a restart of the loader (Neptune's does
  not) and any replica accepts it.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import asyncpg

from loadbay_loader.graph import reset_store as store
from loadbay_loader.graph.errors import InvalidParameter, NeptuneError

TOKEN_LIFETIME = timedelta(minutes=60)
LOCK_TIMEOUT_S = 30  # waiting for readers of the graph (or a load's status update)
INITIATE = "initiateDatabaseReset"
PERFORM = "performDatabaseReset"
OK = "200 OK"


class MissingParameters(NeptuneError):
    code = "MissingParameterException"
    http_status = 400

    def __init__(self, *names: str) -> None:
        super().__init__(f"Missing required parameters: [{', '.join(names)}]")


class PreconditionsFailed(NeptuneError):
    code = "PreconditionsFailedException"
    http_status = 400


class ClientTimeout(NeptuneError):
    code = "ClientTimeoutException"
    http_status = 408


def parse_system_request(
    raw: bytes, content_type: str, query: list[tuple[str, str]]
) -> dict[str, str]:
    """The parameters of a ``POST /system``: a JSON object or URL-encoded, in the body (or,
    without one, in the query string)."""
    if not raw.strip():
        return _once_each(query)
    if "application/x-www-form-urlencoded" in content_type:
        return _once_each(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        body = json.loads(raw, object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidParameter(f"The request body is not a JSON object: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidParameter("The request body must be a JSON object of parameters")
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}


def _once_each(pairs: list[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise InvalidParameter(f"Too many values supplied for: {name}")
        params[name] = value
    return params


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name, value in pairs:
        if name in body:
            raise InvalidParameter(f"Duplicate field '{name}'")
        body[name] = value
    return body


async def handle(pool: asyncpg.Pool, params: dict[str, str], user_id: str | None) -> dict[str, Any]:
    """Carry out one ``POST /system`` request (the caller is one of the graph's users)."""
    action = params.get("action")
    if not action:
        raise MissingParameters("action")
    if action == INITIATE:
        async with pool.acquire() as conn:
            token = await store.issue_token(conn, user_id)
        return {"status": OK, "payload": {"token": token}}
    if action == PERFORM:
        await perform(pool, params.get("token", ""))
        return {"status": OK}
    raise InvalidParameter(f"System command parameter 'action' has unsupported value '{action}'")


async def perform(pool: asyncpg.Pool, token: str) -> None:
    """Empty the graph if `token` is the latest unexpired one and no load is running."""
    mismatch = f"System command parameter 'token' : '{token}' does not match database reset token"
    try:
        async with pool.acquire() as conn, conn.transaction():
            await store.bound_lock_waits(conn, LOCK_TIMEOUT_S)
            current = await store.current_token(conn, TOKEN_LIFETIME)
            if current is None or current[0] != _normalized(token):
                raise InvalidParameter(mismatch)
            if current[1]:
                raise InvalidParameter(
                    f"{mismatch}: it has expired (a token is valid for"
                    f" {TOKEN_LIFETIME.seconds // 60} minutes); send initiateDatabaseReset again"
                )
            await store.lock_loads(conn)
            running = await store.running_loads(conn)
            if running:
                raise PreconditionsFailed(
                    f"The graph cannot be reset while a load is running: {', '.join(running)}"
                    " is LOAD_IN_PROGRESS. Cancel it (DELETE /loader/<loadId>) or wait for it to"
                    " end, then send performDatabaseReset again: the token stays valid"
                )
            await store.reset_graph(conn)
    except asyncpg.exceptions.LockNotAvailableError as exc:
        raise ClientTimeout(
            f"The graph stayed busy for {LOCK_TIMEOUT_S} s (reads or a load in progress), so it"
            " was not reset; send performDatabaseReset again: the token stays valid"
        ) from exc


def _normalized(token: str) -> str:
    try:
        return str(uuid.UUID(token))
    except ValueError:
        return ""
