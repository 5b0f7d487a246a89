"""S3 connections: create, list, show, update, delete, test, versions, policies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from loadbay_ingestion import connections, policies, regions, repository
from loadbay_ingestion.connections import ConnectionCreate, ConnectionUpdate, VersionChange
from loadbay_ingestion.metrics import CONNECTION_TESTS
from loadbay_ingestion.remote import check_remote_endpoint, remote_client, test_access
from loadbay_ingestion.routes.views import Context, download
from loadbay_ingestion.rows import Connection
from loadbay_platform.auth import CurrentPrincipal, Principal
from loadbay_platform.dependencies import DbPool
from loadbay_platform.errors import Conflict, NotFound

router = APIRouter()


@router.post("/connections", status_code=201, tags=["connections"])
async def create_connection(
    body: ConnectionCreate, principal: CurrentPrincipal, pool: DbPool, ctx: Context
) -> dict[str, Any]:
    """Create an S3 connection. Access keys are stored encrypted and never shown again."""
    async with pool.acquire() as conn, conn.transaction():
        found = await connections.create_connection(conn, ctx.box, body, principal, ctx.policy)
        return await connections.view(conn, found)


@router.get("/connections", tags=["connections"])
async def list_connections(principal: CurrentPrincipal, pool: DbPool) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        return [
            await connections.view(conn, c)
            for c in await repository.list_connections(conn, principal.user_id)
        ]


@router.get("/connections/{name}", tags=["connections"])
async def show_connection(name: str, principal: CurrentPrincipal, pool: DbPool) -> dict[str, Any]:
    async with pool.acquire() as conn:
        found = await connections.connection_for(conn, name, principal)
        view = await connections.view(conn, found)
        view["datasets"] = [b.dataset for b in await repository.list_bindings(conn, found.id)]
        return view


@router.patch("/connections/{name}", tags=["connections"])
async def update_connection(
    name: str, body: ConnectionUpdate, principal: CurrentPrincipal, pool: DbPool, ctx: Context
) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        current = await connections.owned_connection(conn, name, principal)
        await connections.update_connection(conn, ctx.box, current, body, principal, ctx.policy)
        found = await repository.connection_by_id(conn, current.id)
        assert found is not None
        return await connections.view(conn, found)


@router.delete("/connections/{name}", status_code=204, tags=["connections"])
async def delete_connection(name: str, principal: CurrentPrincipal, pool: DbPool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        current = await connections.owned_connection(conn, name, principal)
        await connections.delete_connection(conn, current)


@router.post("/connections/{name}/test", tags=["connections"])
async def test_connection(
    name: str, principal: CurrentPrincipal, pool: DbPool, ctx: Context
) -> dict[str, Any]:
    """Whether loadbay can list the bucket and read from it; if not, why."""
    async with pool.acquire() as conn:
        found = await connections.connection_for(conn, name, principal)
    problem = regions.opt_in_problem(found.region, ctx.settings.enabled_opt_in_regions)
    if problem is not None:
        result: dict[str, Any] = {
            "bucket": found.bucket, "ok": False, "can_list": False, "can_read": False,
            "reason": problem,
        }  # fmt: skip
    else:
        await check_remote_endpoint(found, ctx.policy)  # 422 before any request is sent
        try:
            client = remote_client(found, ctx.settings, ctx.box, ctx.policy)
        except ValueError as exc:  # the stored keys cannot be decrypted
            raise Conflict(str(exc)) from exc
        async with client as remote:
            result = await test_access(remote, found.bucket)
    CONNECTION_TESTS.labels("ok" if result["ok"] else "failed").inc()
    return result


@router.post("/connections/{name}/upgrade", tags=["connections"])
async def upgrade(
    name: str, body: VersionChange, principal: CurrentPrincipal, pool: DbPool
) -> dict[str, Any]:
    """Upgrade to the next version (1.6 -> 1.7 -> 1.8)."""
    return await _change_version(pool, name, body, principal, connections.upgrade)


@router.post("/connections/{name}/downgrade", tags=["connections"])
async def downgrade(
    name: str, body: VersionChange, principal: CurrentPrincipal, pool: DbPool
) -> dict[str, Any]:
    """Downgrade back to a version the connection was upgraded from."""
    return await _change_version(pool, name, body, principal, connections.downgrade)


async def _change_version(
    pool: asyncpg.Pool,
    name: str,
    body: VersionChange,
    principal: Principal,
    change: Callable[[asyncpg.Connection, Connection, str, Principal], Awaitable[None]],
) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        current = await connections.owned_connection(conn, name, principal)
        await change(conn, current, body.version, principal)
        found = await repository.connection_by_id(conn, current.id)
        assert found is not None
        return await connections.view(conn, found)


def _add_policy_route(document: policies.PolicyDocument) -> None:
    async def policy(
        name: str, principal: CurrentPrincipal, pool: DbPool, ctx: Context
    ) -> JSONResponse:
        async with pool.acquire() as conn:
            found = await connections.connection_for(conn, name, principal)
        missing = document.missing(found)
        if missing is not None:
            raise NotFound(f"connection {name!r} {missing}")
        body = document.build(found, ctx.settings.principal_arn)
        return download(body, f"{name}-{document.path}.json")

    router.add_api_route(
        f"/connections/{{name}}/{document.path}",
        policy,
        methods=["GET"],
        tags=["connections"],
        name=document.path.replace("-", "_"),
        description=document.description,
    )


for _document in policies.DOCUMENTS:
    _add_policy_route(_document)
